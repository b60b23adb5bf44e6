"""What people read from a flag run: families, the HTML report and its figures."""
