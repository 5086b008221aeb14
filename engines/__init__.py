"""Model files shipped with streamgenre (data, not code); see MODEL.md."""
