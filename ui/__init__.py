"""App-side helpers: cached resources and the shared page frame (imports Streamlit)."""
