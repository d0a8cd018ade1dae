"""Tables, figures and analyses of the pipeline's runs (used by the notebooks)."""
