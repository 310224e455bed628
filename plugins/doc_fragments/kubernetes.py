# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the kubernetes backend; given with platform=docker they are refused (platforms.check_options).
    # module_utils/kubernetes/args.py KUBERNETES_ARGS is the matching argument spec.
    DOCUMENTATION = r"""
requirements:
  - kubernetes >= 24.2.0 (Python library, on the host the task runs on), for O(platform=kubernetes)
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file. Only for O(platform=kubernetes).
      - Defaults to the E(K8S_AUTH_KUBECONFIG) environment variable, then E(KUBECONFIG), then C(~/.kube/config).
      - When neither a kubeconfig nor O(host) is found, the in-cluster service account is used.
      - The connection options have kubernetes.core's names and read the same E(K8S_AUTH_*) variables, so
        tasks and AWX credentials written for kubernetes.core work as they are. For each of them, an explicit
        value wins over the variable, and an empty string turns the setting off without reading the variable.
    type: path
  context:
    description:
      - The kubeconfig context to use. Defaults to E(K8S_AUTH_CONTEXT), then the kubeconfig's current context.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://203.0.113.10:6443).
      - Defaults to E(K8S_AUTH_HOST), which AWX's Kubernetes credential sets. Without O(kubeconfig), the
        connection is built from O(host), O(api_key) and the TLS options alone; with it, these options override
        the kubeconfig's values.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with. Defaults to E(K8S_AUTH_API_KEY). Never shown in output or errors.
    type: str
  ca_cert:
    description:
      - PEM file of the CA that signed the API server's certificate. Defaults to E(K8S_AUTH_SSL_CA_CERT).
      - The alias C(k8s_ca_cert) is deprecated and will be removed in version 2.0.0.
    type: path
    aliases: [ssl_ca_cert, k8s_ca_cert]
  client_cert:
    description:
      - PEM client certificate for TLS client authentication. Defaults to E(K8S_AUTH_CERT_FILE).
      - The alias C(k8s_client_cert) is deprecated and will be removed in version 2.0.0.
    type: path
    aliases: [cert_file, k8s_client_cert]
  client_key:
    description:
      - PEM key of O(client_cert). Defaults to E(K8S_AUTH_KEY_FILE).
      - The alias C(k8s_client_key) is deprecated and will be removed in version 2.0.0.
    type: path
    aliases: [key_file, k8s_client_key]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to E(K8S_AUTH_VERIFY_SSL), then the
        kubeconfig's setting, then V(true).
      - The alias C(k8s_validate_certs) is deprecated and will be removed in version 2.0.0.
    type: bool
    aliases: [verify_ssl, k8s_validate_certs]
  proxy:
    description:
      - URL of an HTTP proxy for the API connection, for example V(http://proxy.example.com:3128).
        Defaults to E(K8S_AUTH_PROXY). The usual E(HTTP_PROXY) variables are not read.
      - The alias C(k8s_proxy) is deprecated and will be removed in version 2.0.0.
    type: str
    aliases: [k8s_proxy]
  no_proxy:
    description:
      - Comma-separated hosts, domains, addresses and CIDR ranges reached without O(proxy), for example
        V(localhost,.cluster.local,10.0.0.0/8). Defaults to E(K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description:
      - Headers sent to O(proxy). When unset, each suboption defaults to its E(K8S_AUTH_PROXY_HEADERS_*) variable.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(user:password) for the proxy's basic authentication (C(Proxy-Authorization) header).
            Defaults to E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH).
        type: str
      basic_auth:
        description:
          - C(user:password) for a basic C(Authorization) header. Defaults to E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH).
        type: str
      user_agent:
        description:
          - The C(User-Agent) header, for example V(ops-automation/1.0). Defaults to
            E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
        type: str
  impersonate_user:
    description:
      - User to act as (C(Impersonate-User) header; the credentials need the C(impersonate) permission).
        Defaults to E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to act as, with O(impersonate_user) (one C(Impersonate-Group) header each). Defaults to
        E(K8S_AUTH_IMPERSONATE_GROUPS), comma-separated, for example V(developers,auditors).
    type: list
    elements: str
  k8s_request_timeout:
    description:
      - Seconds to wait for the API server to answer one request (not the rollout; see the wait options).
      - Default V(30). Only for O(platform=kubernetes), refused with O(platform=docker).
    type: int
  readiness_failure_limit:
    description:
      - While waiting for a rollout, fail as soon as a pod of the new revision has been running without
        passing its readiness probe for this many probe periods (after the probe's initial delay).
      - V(0) turns this check off. Crash-looping pods and image pull errors always fail the wait at once.
      - Default V(10). Only for O(platform=kubernetes), refused with O(platform=docker).
    type: int
  wait_old_pods_gone:
    description:
      - When waiting for a rollout, also wait until no pod of the workload from an older revision exists any
        more, terminating pods (still in their grace period or C(preStop) hook) included. Use it when the next
        step must not run while the old version may still serve or hold connections, for example a database
        migration the old version must not see.
      - The old pods are those matching the workload's selector whose C(pod-template-hash) (Deployment) or
        C(controller-revision-hash) (StatefulSet, DaemonSet) label differs from the new revision's, among the
        workload's own pods (controlled by one of the Deployment's ReplicaSets, or by the StatefulSet or
        DaemonSet). Pods of another controller that the selector matches too, such as a canary Deployment's, do
        not count; nor do the pods a partitioned StatefulSet keeps below its partition.
      - Counts against the same wait timeout as the rollout; running out of time names the pods still present.
        On success the returned C(status) has C(old_pods_gone=true).
      - Applies only when the task waits. Docker hosts always stop the old containers before returning.
      - Default V(false). Only for O(platform=kubernetes), refused with O(platform=docker).
    type: bool
"""

    # image_upgrade's canary; module_utils/kubernetes/args.py KUBERNETES_CANARY_ARGS is the matching argument spec.
    CANARY = r"""
options:
  canary:
    description:
      - Run the new image in a separate canary Deployment next to the workload instead of upgrading the workload,
        or remove that canary. The workload itself is never changed. Only for O(platform=kubernetes) with
        O(kind=Deployment); refused with O(platform=docker), where O(max_batches) or O(strategy=steps) is the
        canary.
      - The canary is named after the workload plus O(canary.name_suffix). It is a copy of the workload's pod
        template in which the containers O(image) applies to (O(container), or those whose image repository
        matches) run O(image), with the workload's labels plus C(track=canary), in its selector too, so that its
        pods take their share of a Service that selects the workload's labels, and are never counted as the
        workload's own. The workload's C(strategy), C(minReadySeconds) and C(progressDeadlineSeconds) are
        copied. The annotation C(zerodown.rollout/canary-of) names the workload; a Deployment of the canary's
        name without it is never changed or removed.
      - With O(canary.state=present), creates the canary, or updates it when its pod template or replicas differ
        from what the workload and O(image) give; nothing changes when they are the same. With O(wait=true),
        waits up to O(wait_timeout) seconds until its pods are ready, with the same fail-fast rules as any rollout.
        O(replicas) (the workload's) is refused with it.
      - With O(canary.state=absent), scales the canary to 0, waits (with O(wait=true), up to O(wait_timeout)
        seconds) until none of its pods is left, terminating ones included, then deletes it. Nothing changes
        when there is no canary. O(image), O(container), O(change_cause) and O(replicas) are refused with it
        (the canary is removed whatever it runs), so O(image) is required unless O(canary.state=absent).
      - Check mode does the creation or update as a server-side dry run, and predicts a removal.
      - O(change_cause) becomes the canary's C(kubernetes.io/change-cause).
    type: dict
    suboptions:
      state:
        description:
          - V(present) runs the canary, V(absent) removes it.
        type: str
        choices: [present, absent]
        default: present
      replicas:
        description:
          - How many canary pods to run, from 1 to the workload's replicas (a larger canary would take most of
            the traffic). Refused below 1.
          - Default V(1) with O(canary.state=present); refused with O(canary.state=absent).
        type: int
      name_suffix:
        description:
          - Appended to the workload's name to name the canary. Must not be empty, and the whole name must be a
            valid Kubernetes object name.
        type: str
        default: -canary
"""
