"""The HTTP benchmark: the product's write endpoints next to the inline code they replace,
through one web server, loaded by wrk (`python benchmarks/run.py --http`)."""
