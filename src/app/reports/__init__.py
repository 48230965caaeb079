"""Reports: the yearly condition report (JSON and PDF) and the logbook export."""
