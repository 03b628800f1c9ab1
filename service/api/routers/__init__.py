"""One router per resource: health, studies, trials, diagnose."""
