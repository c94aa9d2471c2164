"""The compliance and trends report (docs/report.md): facts from events through the rules engine
(`facts`), the measures (`measures`, pure), small-cell suppression (`suppression`) and the
outputs json, csv and html (`render`)."""
