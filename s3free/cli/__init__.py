"""The `s3free` command line: thin click commands that parse, call a lower layer, and print."""
