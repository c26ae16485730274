"""The UI tests' Node packages are not Python tests."""

collect_ignore_glob = ["node_modules/*", "node_modules"]
