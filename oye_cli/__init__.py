"""OYE Proxy."""
