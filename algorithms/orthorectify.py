"""Processing algorithm ``spectraltf:orthorectify``: sensor geometry → map grid with an EMIT GLT
(adapter over :mod:`..runtime.glt`)."""
from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
)

from ..runtime import glt
from ..runtime.errors import InputError
from .base import RasterParameter, SpectralAlgorithm


class OrthorectifyAlgorithm(SpectralAlgorithm):
    NAME = "orthorectify"
    DISPLAY = "Orthorectify with EMIT GLT"
    GROUP = "radiometry"

    INPUT = "INPUT"
    GLT = "GLT"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(RasterParameter(
            self.INPUT, "Sensor-geometry raster (any output made from an EMIT scene, or an EMIT netCDF)"))
        self.addParameter(QgsProcessingParameterFile(
            self.GLT, "Geometry lookup table: the scene's EMIT netCDF (or a 2-band GLT raster)",
            QgsProcessingParameterFile.File, optional=True,
            fileFilter="EMIT netCDF (*.nc);;GLT rasters (*.tif *.img *.vrt);;All files (*.*)"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Orthorectified raster"))

    def shortHelpString(self):  # noqa: N802
        return (
            "Puts a raster that is in EMIT's raw sensor geometry (columns = crosstrack samples, rows = "
            "downtrack lines), e.g. a TOA reflectance, cloud mask or attention map computed from an EMIT "
            "netCDF, onto the map grid with the scene's geometry lookup table (GLT), by nearest neighbour as "
            "EMIT's own tools do.<br><br>"
            "<b>Sensor-geometry raster</b>: same size as the scene's sensor grid (an EMIT L1B/L2A netCDF can "
            "be given directly, e.g. the L2A MASK).<br>"
            "<b>Geometry lookup table</b>: the EMIT netCDF of the same scene (any of RDN, OBS, RFL, MASK: the "
            "GLT is in location/glt_x, glt_y; map grid and CRS in its geotransform / spatial_ref attributes), "
            "or a georeferenced 2-band GLT raster (band 1 = sample, band 2 = line, 1-based, 0 = no data). "
            "Optional when the input itself is an EMIT netCDF.<br>"
            "<b>Output</b>: GeoTIFF on the GLT's map grid (WGS 84 for EMIT, 60 m pixels), same data type, bands, "
            "band names, wavelengths, colour table and .qml style as the input; map pixels outside the swath "
            "get the input's nodata value (−9999 for float, 255 for byte rasters without nodata).<br>"
            "The raster is written tile by tile; only the sensor window a tile needs is read.")

    def execute(self, parameters, context, monitor):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError("cannot open the sensor-geometry raster.", self.INPUT)
        source = layer.source()
        glt_path = self.parameterAsFile(parameters, self.GLT, context) or glt.glt_source_for(source)
        if not glt_path:
            raise InputError("no geometry lookup table given; choose the EMIT netCDF of the scene "
                             "(it holds location/glt_x, glt_y).", self.GLT)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        glt.orthorectify(source, glt_path, output, monitor, config=self.runtime_config)
        return {self.OUTPUT: output}
