"""Data: synthetic demo sets, image folders, spatial transcriptomics, the sample store."""
