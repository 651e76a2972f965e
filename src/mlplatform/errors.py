"""The platform's own exceptions, importable from every layer without pulling in the CLI."""


class PlatformError(RuntimeError):
    """An error the user can fix; the CLI prints it as one line, without a traceback."""


class ConfigurationError(ValueError):
    """Settings that must not be used as they are."""
