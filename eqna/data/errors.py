"""The error every data room raises: it sits below readers, labels and checks alike."""

__all__ = ["DataError"]


class DataError(ValueError):
    """Unreadable or inconsistent data; the message names the file, frame and key."""
