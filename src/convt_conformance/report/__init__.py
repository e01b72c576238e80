"""The report: the HTML page, its data, precision margins, JUnit and Markdown outputs."""
