"""Operations surface: HTTP API, admin operations, metrics, web view (private)."""
