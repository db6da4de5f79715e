"""Treatment planning and the health assistant: Gemini when configured, an offline knowledge base always.

`gemini` wraps the google-genai SDK; `deidentify` builds the only text that may leave the
machine; `schema` is the structured plan; `retrieval` and `planner` work offline over
``lungscan/knowledge``; `assistant` and `treatment` choose between them and fall back.
"""
