"""Test support shared by the integration tests, the benchmarks and the stress run: harnesses for the Docker
engines and the test HAProxy (docker_harness), the fault tests (fault_harness) and the roles (roles_harness)."""
