"""Test support shared by greenloop's test suites (not shipped with the operator): the
operator's Jobs' sidecar played by a test, workloads, owners, result endpoints.

The cluster itself (a real control plane and a real node) is a tool: tools/cluster/.
"""
