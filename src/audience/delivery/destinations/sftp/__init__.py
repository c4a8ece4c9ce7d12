"""SFTP drops (paramiko): host key checked, written to a temporary name, then renamed."""
