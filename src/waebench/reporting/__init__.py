"""`waebench-report`: collect runs (`runs`), aggregate them into one table per dataset
(`table`), with the papers' published numbers (`waebench.papers`), and write them as Markdown,
CSV, LaTeX (`render`) and a figure (`figure`)."""
