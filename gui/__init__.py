"""QGIS desktop-only parts of the plugin (never imported by ``qgis_process`` runs)."""
