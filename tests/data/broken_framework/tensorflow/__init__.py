# Test fixture: a "tensorflow" that is installed but cannot be imported.
raise ImportError("simulated broken tensorflow install")
