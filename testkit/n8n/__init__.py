"""n8n for tests and benchmarks: its run data and tables, the flatted npm package, the
end-to-end run through a real n8n."""
