"""Click commands, one module per pipeline stage; each exports COMMANDS."""
