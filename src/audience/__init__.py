"""Audience: turn a customer 360 into audiences and deliver them where marketing happens."""

from audience.errors import AudienceError

__all__ = ["AudienceError"]
__version__ = "0.1.0"
