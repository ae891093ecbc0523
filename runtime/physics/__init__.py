"""Spectroscopy and radiometry: band metadata (wavelength in nm, FWHM, bad-band list), solar
geometry and spectra, radiance → top-of-atmosphere reflectance, and which bands are valid for a
model (bbl flags, drop ranges, scale) and how bands match a model's wavelengths."""
