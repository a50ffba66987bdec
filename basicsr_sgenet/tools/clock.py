"""Durations as people read them on a console or in a report: ``4:05`` or ``1:02:03``."""


def format_clock(seconds):
    """``M:SS`` under an hour, ``H:MM:SS`` from an hour on (negative counts as zero)."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'
    return f'{seconds // 60}:{seconds % 60:02d}'
