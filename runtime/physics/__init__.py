"""Radiometry and geometry: solar geometry and spectra, radiance → top-of-atmosphere reflectance,
which bands are valid for a model (bbl flags, drop ranges, scale) and how bands match a model's
wavelengths, and orthorectification with EMIT geometry lookup tables (GLT)."""
