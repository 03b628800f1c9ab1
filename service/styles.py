"""Terminal colours shared by every command that prints a diagnosis label."""

LABEL_STYLE: dict[str, str] = {
    "healthy": "green",
    "overfitting": "yellow",
    "underfitting": "magenta",
    "undertrained": "cyan",
    "diverged": "red",
    "inconclusive": "dim",
}
