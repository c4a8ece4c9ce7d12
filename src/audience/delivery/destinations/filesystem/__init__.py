"""A folder on this machine or a mounted share: written to a temporary name, then renamed."""
