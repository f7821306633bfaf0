"""Security checks shared by the services."""

from jobrelay.security.urls import UnsafeURLError, UrlPolicy, check_url, check_url_syntax, forbidden_address

__all__ = ["UnsafeURLError", "UrlPolicy", "check_url", "check_url_syntax", "forbidden_address"]
