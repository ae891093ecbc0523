"""Task entry points behind :data:`.parameters.TASKS` (QGIS-free).

Every function has the signature ``run(config, monitor, **kwargs) -> dict``: ``kwargs`` are the
parsed values of the task's parameters keyed by their runtime argument (:attr:`.parameters.Param.key`,
see :func:`.parameters.parse_values`), ``config`` the run's settings (a ``RuntimeConfig`` or None for
the defaults) and the result maps the task's destination arguments and result keys (``mask``,
``cloud_fraction``, …: :attr:`.parameters.Param.key` of its destinations and outputs) to paths and
figures; a key ``_result`` holds the runtime's own result object for callers that style outputs.
Errors and log messages name parameters by argument (see :mod:`.errors`). The Processing
algorithms and the batch runner both call these through :attr:`.parameters.Task.run`, which renames
results, messages and errors to Processing names, so a task runs the same way in the Toolbox, in
``qgis_process`` and on a Dask worker.
"""
import json

from .errors import InputError, ref


def _inputs(single, series, parameter="input"):
    """One list of input paths from a single raster and a per-date list (the single raster first)."""
    paths = ([single] if single else []) + list(series or [])
    if not paths:
        raise InputError("no raster given; expected a raster (or one raster per date).", parameter)
    return paths


def toareflectance(config, monitor, input, output, observation=None, irradiance=None, solar_zenith=None,
                   earth_sun_distance=None, radiance_units="auto", scale=None):
    import os

    from .physics import toa

    if irradiance and (str(irradiance).lower().endswith(".onnx")
                       or (not os.path.exists(irradiance) and not os.path.dirname(irradiance))):
        from .models import registry  # a model (id or .onnx): convert with that model's own solar spectrum

        irradiance = registry.solar_spectrum(irradiance, "irradiance")
    summary = toa.toa_reflectance(input, output, observation=observation, irradiance=irradiance,
                                  solar_zenith=solar_zenith, earth_sun_distance=earth_sun_distance,
                                  radiance_units=radiance_units, monitor=monitor, config=config, scale=scale)
    monitor.info(f"Wrote {summary['bands']} bands, {summary['valid_pixels']} valid pixels to {summary['output']}.")
    return {"output": summary["output"], "_result": summary}


def cloudmask(config, monitor, input, mask, model, input_type="auto", observation=None, irradiance=None,
              solar_zenith=None, earth_sun_distance=None, threshold=None, device="auto", batch_size=None,
              probability=None, scale=None):
    from .models import spectf_pipeline

    result = spectf_pipeline.run_spectf(
        input, model=model, outputs={"mask": mask, "probability": probability}, input_type=input_type,
        observation=observation, irradiance=irradiance, solar_zenith=solar_zenith,
        earth_sun_distance=earth_sun_distance, threshold=threshold, device=device, batch_size=batch_size,
        monitor=monitor, config=config, scale=scale)
    return {"mask": mask, "probability": probability, "cloud_fraction": result.cloud_fraction,
            "valid_pixels": result.valid_pixels, "cloud_pixels": result.cloud_pixels, "_result": result}


def segment(config, monitor, classes, model, input=None, series=(), bands=None, overlap=None, batch_size=4,
            device="auto", probabilities=None, confidence=None, dates=None):
    from .models import segmentation

    result = segmentation.run_segmentation(
        _inputs(input, series), model, {"classes": classes, "probabilities": probabilities, "confidence": confidence},
        bands=bands or None, overlap=overlap, batch_size=batch_size, device=device, monitor=monitor,
        dates=dates or None, config=config)
    return {"classes": classes, "probabilities": probabilities, "confidence": confidence,
            "valid_pixels": result.valid_pixels, "class_counts": json.dumps(result.class_counts),
            "provider": result.provider, "_result": result}


def attentionmaps(config, monitor, output, model, input=None, series=(), device="auto", batch_size=None,
                  input_type="auto", observation=None, irradiance=None, dates_text=None, top_wavelength=None,
                  heads=None, classes=None, scale=None):
    from .models import ltae

    paths = _inputs(input, series)
    mode, path, card = ltae.resolve_attention_model(model, device, config=config)
    monitor.info(f"Model {card.get('id', path)}: {'band (SpecTf)' if mode == 'spectral' else 'temporal (L-TAE)'} "
                 "attention.")
    results = {"output": output, "_mode": mode}
    if mode == "spectral":
        if len(paths) != 1:
            raise InputError(f"{len(paths)} rasters given; band attention (SpecTf) takes exactly one "
                             "hyperspectral raster.", "input")
        for name, value in (("dates_text", dates_text), ("heads", heads), ("classes", classes)):
            if value not in (None, ""):
                monitor.warn(f"{ref(name)} applies to temporal (L-TAE) models only; ignored.")
        from .models import spectf_pipeline

        outputs = {"attention": output}
        if top_wavelength:
            outputs["top_wavelength"] = top_wavelength
        result = spectf_pipeline.run_spectf(
            paths[0], model=path, outputs=outputs, input_type=input_type, observation=observation,
            irradiance=irradiance, device=device, batch_size=batch_size, monitor=monitor,
            parameters={"attention": "output"}, config=config, scale=scale)
        if top_wavelength:
            results["top_wavelength"] = top_wavelength
    else:
        for name, value in (("observation", observation), ("irradiance", irradiance),
                            ("top_wavelength", top_wavelength), ("scale", scale)):
            if value not in (None, ""):
                monitor.warn(f"{ref(name)} applies to SpecTf models only; ignored.")
        result = ltae.temporal_attention(paths, path, output, dates_text=dates_text, output_heads=heads,
                                         output_classes=classes, device=device, batch_size=batch_size or 4096,
                                         monitor=monitor, card=card, config=config)
        if heads:
            results["heads"] = heads
        if classes:
            results["classes"] = classes
    results["_result"] = result
    return results


def orthorectify(config, monitor, input, output, glt=None):
    from .physics import glt as glt_mod

    source = glt or glt_mod.glt_source_for(input)
    if not source:
        raise InputError("no geometry lookup table given; choose the EMIT netCDF of the scene "
                         "(it holds location/glt_x, glt_y).", "glt")
    glt_mod.orthorectify(input, source, output, monitor, config=config)
    return {"output": output}


def models(config, monitor, output_json=None):
    from .models import registry
    from .models.model_card import card_summary
    from .pipeline import write_text_atomically

    entries = registry.list_models(config=config)
    for e in entries:
        if e.duplicate_warning:
            monitor.warn(e.duplicate_warning)
        if e.error:
            monitor.warn(f"{e.id} ({e.origin}, {e.path}): unusable: {e.problem_text}")
        else:
            monitor.info(f"{card_summary(e.card)}\n  origin: {e.origin}\n  path: {e.path}\n"
                         f"  card: {json.dumps(e.card, sort_keys=True)}")
    if not entries:
        monitor.info("No models found. Install one with Plugins ▸ Spectral Transformers ▸ Install model… "
                     "(spectraltf:installmodel); the ukis-csmask models come with Install dependencies… "
                     "(spectraltf:installdependencies).")
    text = json.dumps([e.as_dict() for e in entries], indent=1, sort_keys=True)
    if output_json:
        write_text_atomically(output_json, text, "output_json")
    return {"models": text, "count": sum(1 for e in entries if not e.error), "output_json": output_json or None}


def installdependencies(config, monitor, device="auto", with_ukis=True, wheel_dir=None, index_url=None):
    from . import deps

    installer = deps.Installer(device=device, with_ukis=with_ukis, wheel_dir=wheel_dir or None,
                               index_url=(index_url or "").strip() or None)
    installed = installer.run(monitor)
    monitor.info("Restart QGIS (or start a new qgis_process) to use them.")
    return {"folder": installer.target, "installed": ", ".join(installed)}


def installmodel(config, monitor, source, sha256=None, card=None, overwrite=False):
    from . import deps
    from .models import model_install

    installed = model_install.install_model(source, card=card, sha256=sha256, overwrite=overwrite, monitor=monitor)
    return {"folder": deps.models_dir(), "model_ids": ", ".join(m["id"] for m in installed), "count": len(installed)}


def submitbatch(config, monitor, algorithm, inputs, output_dir, parameters=None, scheduler=None, workers=None,
                retries=None, force=False):
    """One batch of ``algorithm`` over the scenes of the CSV ``inputs`` on Dask (the batch runner's
    :func:`..batch.submit.submit`; Dask is imported only here)."""
    from ..batch.submit import submit

    return submit(config, monitor, algorithm, inputs, output_dir, parameters=parameters, scheduler=scheduler,
                  workers=workers, retries=retries, force=force)
