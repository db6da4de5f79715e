"""LungScan core: models, preprocessing, inference, explainability, storage and reports.

This package never imports Streamlit; everything here is testable without a browser.
"""

__version__ = "0.1.0"
