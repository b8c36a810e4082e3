"""`waebench-report`: collect runs (`runs`), aggregate them into one table per dataset
(`table`), with the WAE paper's published numbers (`published`), and write them as Markdown,
CSV, LaTeX (`render`) and a figure (`figure`)."""
