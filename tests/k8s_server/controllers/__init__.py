"""Controllers of the test API server (deployment, replicaset, statefulset, daemonset)."""
