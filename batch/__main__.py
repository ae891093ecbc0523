"""``python -m spectral_transformers.batch``: see :mod:`.cli`."""
import sys

if __name__ == "__main__":  # the guard keeps Dask's spawned worker processes from rerunning it
    from .cli import main

    sys.exit(main())
