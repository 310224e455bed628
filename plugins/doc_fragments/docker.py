# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the docker backend; given with platform=kubernetes they are refused (platforms.check_options).
    # In step with plugins/module_utils/docker/args.py: DOCUMENTATION = DOCKER_ARGS,
    # ROLLOUT = DOCKER_ROLLOUT_ARGS, CONTAINER = DOCKER_CONTAINER_ARGS.
    DOCUMENTATION = r"""
requirements:
  - docker >= 5.0.3 and requests >= 2.28.0 (Python libraries, on the host the task runs on), for O(platform=docker);
    on Python 3.12 and later docker >= 6.0.0, and with requests >= 2.32.0 docker >= 7.1.0
options:
  docker_host:
    description:
      - The Docker engine of the host, as V(unix:///var/run/docker.sock) or V(tcp://host:2376). Only for
        O(platform=docker).
      - Set it per inventory host so that each host acts on its own engine.
      - Defaults to the E(DOCKER_HOST) environment variable, then to the local socket.
    type: str
  docker_tls:
    description:
      - Talk TLS to a V(tcp://) O(docker_host). Implied when a certificate option is set.
      - Default V(false). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: bool
  docker_tls_verify:
    description:
      - Verify the engine's certificate (against O(docker_ca_path) or the system's CAs).
      - Set to V(false) only for a test engine you trust.
      - Default V(true). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: bool
  docker_ca_path:
    description:
      - PEM file of the CA that signed the engine's certificate.
    type: path
  docker_client_cert:
    description:
      - PEM client certificate for an engine that requires one. Goes with O(docker_client_key).
    type: path
  docker_client_key:
    description:
      - PEM key of O(docker_client_cert).
    type: path
  docker_timeout:
    description:
      - Seconds to wait for an answer of the Docker API; 1 or more.
      - Default V(60). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: int
  load_balancer:
    description:
      - The L7 load balancer in front of the workload's containers. Only for O(platform=docker).
      - When omitted, no load balancer is driven (as with O(load_balancer.type=none)); changing modules
        then warn that zero downtime needs one.
      - Each suboption below says which O(load_balancer.type) takes it; one given for another type is refused
        before anything changes.
    type: dict
    suboptions:
      type:
        description:
          - V(haproxy) drives an HAProxy backend through its runtime API (HAProxy 2.6 or later, dynamic
            servers, drain and session counts).
          - V(nginx) rewrites an upstream file and reloads nginx gracefully. nginx counts no sessions, so
            draining waits O(load_balancer.drain_grace) seconds.
          - V(caddy) changes the upstreams of one C(reverse_proxy) handler through Caddy's admin API (Caddy
            2.6 or later; each change is a config reload of Caddy, no restart). Caddy counts no request of an
            upstream once it has left the config, so draining waits O(load_balancer.drain_grace) seconds.
            Caddy 2.6 has no weighted selection policy, so weights and O(zerodown.rollout.image_upgrade#module:strategy=steps) are refused.
          - V(none) drives nothing.
        type: str
        default: haproxy
        choices: [haproxy, nginx, caddy, none]
      socket:
        description:
          - For V(haproxy), the runtime API socket (C(stats socket ... level admin)) as a path, or
            V(host:port) for a TCP one.
        type: str
      master_socket:
        description:
          - For V(haproxy), HAProxy's master CLI (C(haproxy -W -S <path>); Debian's C(haproxy.service) has
            C(/run/haproxy-master.sock)) as a path, or V(host:port).
          - With it, an old container stops only once no worker left over from a reload still routes to it.
            Such old workers finish their open connections with the servers they loaded, without health
            checks, so without it a reload during a rollout can send a last request to a container that is
            stopping. Set it wherever HAProxy may be reloaded while a rollout runs.
          - Without it, the module still takes out a member that a reload brought back from an older
            O(load_balancer.servers_file) before its container stops.
        type: str
      backend:
        description:
          - For V(haproxy), the backend whose servers are the workload's containers. Defaults to O(name).
          - It needs a dynamic load balancing algorithm (for example C(balance roundrobin)).
        type: str
      server_options:
        description:
          - For V(haproxy), the options of every server added (and written to O(load_balancer.servers_file)).
            Defaults to V(check inter 1s fall 2 rise 1).
          - For V(nginx), options appended to every C(server) line of the upstream, such as V(max_fails=1).
        type: str
      backend_options:
        description:
          - For V(haproxy), the lines of the backend section written to O(load_balancer.servers_file) above
            the servers. Defaults to V(balance roundrobin).
        type: list
        elements: str
      servers_file:
        description:
          - For V(haproxy), a file the module rewrites after every change with the whole backend section
            (O(load_balancer.backend_options) and one C(server) line per live container). Load it in
            HAProxy (C(haproxy -f haproxy.cfg -f <servers_file>)) and leave the backend out of the main
            file. Servers added at run time then survive a reload.
        type: path
      timeout:
        description:
          - For V(haproxy), seconds to wait for an answer of the HAProxy runtime API (and of its master CLI, which it asks
            again for that long while a reload re-executes the master); more than 0.
          - For V(caddy), seconds to wait for an answer of Caddy's admin API; more than 0.
          - Default V(5.0) for V(haproxy), V(10.0) for V(caddy).
        type: float
      upstream_file:
        description:
          - For V(nginx), the file holding the C(upstream) block, included by the nginx configuration.
            The module owns this file.
        type: path
      upstream:
        description:
          - For V(nginx), the name of the upstream. Defaults to O(name).
        type: str
      reload_command:
        description:
          - For V(nginx), the command that reloads nginx gracefully.
          - Default V(nginx -s reload). For V(nginx) only; an empty command is refused.
        type: str
      test_command:
        description:
          - For V(nginx), the command that checks the configuration before each reload; empty to skip.
          - Default V(nginx -t). For V(nginx) only.
        type: str
      drain_grace:
        description:
          - For V(nginx), seconds to wait after a container left the upstream before it is stopped.
          - For V(caddy), seconds to wait after a container left the handler's upstreams before it is stopped;
            Caddy finishes the requests already sent to it on the old config's server, but counts them nowhere.
            Set it above the longest request the app serves.
          - Default V(1.0); zero or more.
        type: float
      admin:
        description:
          - For V(caddy), Caddy's admin API, as Caddy writes its C(admin.listen) address (V(localhost:2019),
            V(unix//run/caddy/admin.sock)), as V(http://host:port), or as the path of a unix socket.
          - Plain HTTP on a loopback address or a unix socket; Caddy's remote admin endpoint (TLS with client
            certificates) is not supported.
          - Default V(localhost:2019), Caddy's own default.
        type: str
      handler_id:
        description:
          - For V(caddy), the C(@id) of the C(reverse_proxy) handler whose upstreams are the workload's
            containers (C(@id) set to V(shop) in the handler object of Caddy's JSON config). Defaults to O(name).
          - The module adds each container as an upstream object with an C(@id) of its own (the container
            name and a tag of the Docker engine) and changes only those; upstreams without an C(@id), or of
            another workload or engine, stay as they are.
        type: str
      config_file:
        description:
          - For V(caddy), the JSON config file Caddy loads on a reload or restart (C(caddy reload --config
            <file>), C(caddy run --config <file>)). Before every change of the running Caddy, the module
            writes the handler's intended upstreams into it, so a reload or restart at any moment keeps them;
            the rest of the file is kept (it is rewritten as indented JSON).
          - Without it, a reload from a file that does not list the current containers routes to what the file
            says until the next run of M(zerodown.rollout.image_upgrade) or M(zerodown.rollout.rollback) puts
            the members back; C(caddy run --resume) keeps them over a restart (Caddy saves every admin API
            change).
          - A Caddyfile cannot carry C(@id); C(caddy adapt --config Caddyfile --pretty) turns it into JSON.
        type: path
  adopt:
    description:
      - Containers started by hand that the workload starts from. Only for O(platform=docker).
      - While the workload has no container of its own (none labelled C(zerodown.workload)), the running
        containers this selects are its revision 1. The first upgrade makes them load balancer members if they
        are not, replaces them batch by batch with copies of their configuration running the new image, and keeps
        them, stopped and unchanged (Docker cannot relabel a container), as the revision a rollback restarts.
      - From then on the workload's own containers record which containers were adopted, and the selector is
        not read again; O(adopt) may be left out of later tasks.
      - An upgrade of an adopted set needs a O(load_balancer) and the app's port, which is C(docker_container.port)
        of M(zerodown.rollout.image_upgrade) when given, else the single port the containers publish.
      - A selector that matches no running container, or containers of two images, is refused before anything
        changes.
      - Give exactly one of O(adopt.labels) and O(adopt.names). Not together with O(compose_project).
    type: dict
    suboptions:
      labels:
        description:
          - Labels every adopted container carries (a label with an empty value matches any value).
        type: dict
      names:
        description:
          - The names of the adopted containers (all must exist and run).
        type: list
        elements: str
  compose_project:
    description:
      - With O(compose_service), the workload is a Compose service, found by Compose's own labels
        (C(com.docker.compose.project), C(com.docker.compose.service)); it is adopted as O(adopt) describes.
      - New containers keep Compose's labels with a container number of their own and Compose's name for it
        (C(<project>_<service>_<number>)), so that C(docker-compose ps) lists them and C(docker-compose down)
        removes them. See the Docker hosts guide for what a later C(docker-compose up) does.
      - The project name is the Compose file's directory name unless C(-p) or E(COMPOSE_PROJECT_NAME) set another.
        Only for O(platform=docker).
    type: str
  compose_service:
    description:
      - The service of O(compose_project), as named in the Compose file.
    type: str
"""

    ROLLOUT = r"""
options:
  batch_size:
    description:
      - How many containers are replaced at a time. Only for O(platform=docker).
      - Each batch starts its new containers before it drains and stops the old ones (start-first).
      - Default V(1). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: int
  batch_interval:
    description:
      - Seconds to pause between two batches.
      - Default V(0). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: float
  health_timeout:
    description:
      - Seconds a new container has to become healthy (its image's HEALTHCHECK, and O(health_check) when
        set) and to be marked up by the load balancer. A container that exits fails at once; one reported
        V(unhealthy) fails once it stays so for 3 seconds (a check that timed out once on a busy host is forgiven).
      - A run with nothing to swap waits this long too for the running containers of the current revision that are
        not load balancer members yet and whose HEALTHCHECK is still V(starting) (started just before the run, such as
        adopted ones or a Compose service's), then makes the healthy ones members; one left out is named in a warning.
      - More than 0 (V(0) is refused, as no container is healthy the instant it starts).
      - Default V(60). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: float
  health_check:
    description:
      - An HTTP probe every new container must pass, on top of its HEALTHCHECK, before it takes traffic.
      - The request goes to the address the load balancer connects to, read after the container started - where
        it publishes its port, or its address on the network of C(docker_container.lb_network). It is sent from
        where the module runs, which must reach that address.
    type: dict
    suboptions:
      path:
        description:
          - The path to request, such as V(/healthz).
        type: str
        required: true
      status:
        description:
          - The statuses that count as healthy.
        type: list
        elements: int
        default: [200]
  drain_timeout:
    description:
      - Seconds to wait for the sessions of a drained container to end before it is taken out of the load
        balancer anyway.
      - Default V(30). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: float
  stop_timeout:
    description:
      - Seconds Docker waits after SIGTERM before it kills a container being stopped. V(0) kills it at once.
      - Old containers are stopped once they are out of the load balancer, in the background (a few at a time),
        so the next batch does not wait for them; the task returns once every stop has ended.
      - Default V(10). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: int
  retain:
    description:
      - How many earlier revisions keep their (stopped) containers, for M(zerodown.rollout.rollback).
      - Containers of older revisions of this workload are removed after a successful change, and by a run
        that finds nothing else to do (a run interrupted before its pruning left them).
      - Default V(2). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: int
  lock_timeout:
    description:
      - Seconds to wait for the workload's lock when another run holds it, then fail without changing
        anything. V(0) fails at once. Only for O(platform=docker).
      - A run that changes the workload first creates a container named C(zerodown-lock-<name>) (created,
        never started, labelled C(zerodown.lock) with the owner's host, pid and operation) and removes it at
        the end, whether the change succeeded or not. Two runs on one workload therefore never change it at
        the same time; the second one waits, then plans again from what the first one left.
      - A lock left by a run on this same host whose process is gone (a killed controller or module) is stale;
        it is taken over at once, with a warning naming its owner.
      - Check mode, and runs with nothing to change, never take the lock.
      - The default lets a re-run after an interrupted controller wait for the module that may still be
        finishing on the host.
      - Default V(300). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: float
"""

    CONTAINER = r"""
options:
  docker_container:
    description:
      - How the containers are created when the workload does not exist yet. Only for O(platform=docker).
      - Ignored for a workload that exists; upgrades and scaling copy the configuration of its running
        containers and change only the image. Only its addressing is checked then (O(docker_container.lb_network)
        given or not, which must match the workload's).
    type: dict
    suboptions:
      port:
        description:
          - The TCP port the app listens on in the container. Defaults to the only TCP port the image exposes.
          - For a workload that adopts containers (O(adopt), O(compose_project)), the port of theirs the load
            balancer reaches; defaults to the single container port they publish.
        type: int
      publish_address:
        description:
          - The host address the port is published on, with a port Docker chooses. The load balancer
            connects to this address.
          - Default V(127.0.0.1). Refused together with O(docker_container.lb_network).
        type: str
      lb_network:
        description:
          - Reach the replicas at their address on this Docker network instead of a published port. No port is
            published; the load balancer (and the O(health_check) probe) connects to the container's IP address on
            the network with O(docker_container.port).
          - For a load balancer that runs in a container on that network (Caddy, nginx-proxy, Traefik, Kamal's
            proxy), or on the engine's host, which reaches containers on a user-defined bridge network.
          - The network must exist (C(docker network create)); it is added to O(docker_container.networks) when it
            is not one of them (the first network when there are none). V(host), V(none) and an empty name are
            refused, and so is O(docker_container.publish_address) given with it.
          - The containers carry the label C(zerodown.lb-network). Every later revision keeps the addressing the
            workload was created with; a task whose O(docker_container) asks for the other addressing of an
            existing workload is refused before anything changes.
        type: str
      env:
        description:
          - Environment variables.
        type: dict
      command:
        description:
          - Arguments that replace the image's C(CMD).
        type: list
        elements: str
      labels:
        description:
          - Extra container labels. The C(zerodown.*) labels are reserved.
        type: dict
      networks:
        description:
          - Docker networks to attach the containers to. The first one replaces the default bridge.
          - See O(docker_container.lb_network) for the network the load balancer reaches them on.
        type: list
        elements: str
      restart_policy:
        description:
          - Docker restart policy of the containers.
        type: str
        default: unless-stopped
        choices: ["no", on-failure, always, unless-stopped]
      healthcheck:
        description:
          - Replaces the image's HEALTHCHECK.
        type: dict
        suboptions:
          test:
            description:
              - The check command, as C(CMD) arguments (V([CMD, wget, -q, http://127.0.0.1:8080/healthz])) or
                a list starting with V(CMD-SHELL).
            type: list
            elements: str
            required: true
          interval:
            description: Seconds between checks.
            type: float
          timeout:
            description: Seconds a check may take.
            type: float
          retries:
            description: Failed checks in a row that make the container unhealthy.
            type: int
          start_period:
            description: Seconds after start during which failures do not count.
            type: float
  pull:
    description:
      - When to pull O(image). V(missing) pulls only when the host does not have it; V(never) fails then.
      - Default V(missing). Only for O(platform=docker), refused with O(platform=kubernetes).
    type: str
    choices: [missing, always, never]
  max_batches:
    description:
      - Stop after this many batches of O(batch_size) containers, leaving the workload partially upgraded;
        the new revision serves next to the old one, both in the load balancer, and its status is
        V(progressing). The result then has C(partial=true). Only for O(platform=docker).
      - This is the Docker canary step, for example O(batch_size=1) with O(max_batches=1).
      - A run with the same O(image) and without O(max_batches) finishes the upgrade;
        M(zerodown.rollout.rollback) brings the previous revision back on every replica.
      - A run with O(max_batches) changes nothing when the new revision already runs on at least that
        many batches.
      - Omitted, every batch is swapped.
    type: int
  strategy:
    description:
      - How an upgrade to a new image moves traffic. Only for O(platform=docker), refused with O(platform=kubernetes).
      - V(rolling) swaps O(batch_size) containers at a time, start-first (the default when omitted).
      - V(steps) starts every replica of the new revision, gates them and puts them in the load balancer at
        weight 0, then gives them the share of requests each item of O(steps) says, judged by O(analysis);
        after the last step the old revision is drained, taken out and kept as a rolling upgrade does. It
        needs a load balancer that weighs its members (V(haproxy) or V(nginx)), and for steps with a
        O(steps[].duration) one that counts requests per server (V(haproxy)), and a pool of the workload's
        own. The host runs both revisions side by side meanwhile; O(batch_size) and O(batch_interval) do not
        apply (every new replica starts at once), and O(max_batches) is refused.
      - V(blue_green) starts every replica of the new revision, gates them and puts them in the load balancer at
        weight 0, then switches every request to them at once (the new members get their default weight first,
        then the old ones weight 0, so the pool is never without a weighed member). The old revision keeps
        running at weight 0 as a standby for O(standby_seconds), so that M(zerodown.rollout.rollback) in that
        window is one switch back with no container started. A module does not run in the background, so the run
        that switched records the standby and its deadline on a container that is created and never started
        (C(zerodown-standby-<name>)), and a later run of this module with the same O(image) retires a standby
        whose time has passed, or any standby with O(promote=true) (drained, taken out, stopped and kept as a
        retained revision). Until then the status is V(complete) and reports the standby. Same needs as
        V(steps) (a load balancer that weighs its members, a pool of the workload's own); O(max_batches),
        O(steps) and O(analysis) are refused.
      - A run that changes nothing but the replica count, and M(zerodown.rollout.rollback), swap as V(rolling)
        does (a rollback to the standby of V(blue_green) switches back instead, when each of its containers runs,
        is not unhealthy and is UP in the load balancer within O(health_timeout); otherwise it warns and rolls
        back start-first).
    type: str
    choices: [rolling, steps, blue_green]
  standby_seconds:
    description:
      - With O(strategy=blue_green), how long the old revision stands by, running at weight 0, after the switch.
        The deadline is recorded by the run that switched; a later run with other O(standby_seconds) does not
        move it. It is retired by the first run of this module (same O(image)) after the deadline, not at the
        deadline itself; M(zerodown.rollout.rollout_info) and M(zerodown.rollout.rollout_wait) report it as
        C(expired) meanwhile, and a rollback still switches back to it while it runs.
      - V(0) keeps no standby - the old revision is drained, taken out and stopped at the end of the switching
        run. At most V(316224000) (10 years); a negative, infinite or larger value is refused before anything
        changes.
      - Refused with another O(strategy). Default V(300).
    type: float
  promote:
    description:
      - With O(strategy=blue_green) and the same O(image) as the run that switched, V(true) retires the standby
        now, whatever its deadline. With no standby, nothing to do (unchanged).
      - On the switching run itself (a new O(image)), V(true) keeps no standby, as O(standby_seconds=0) - the old
        revision is drained, taken out and stopped at the end of that run.
      - Refused with another O(strategy).
    type: bool
  steps:
    description:
      - The steps of O(strategy=steps), in order. A step V({weight, duration}) gives the new revision
        O(steps[].weight) percent of the requests and holds that share O(steps[].duration) seconds while
        O(analysis) judges it. A step V({pause}) ends the run there with C(partial=true) and the status
        V(progressing), the shares as they are.
      - Run the same task again to go on; the run reads the share the load balancer gives the new revision
        and goes on from the step after the last one at or below it (never back to a smaller share). Roll
        back from any step with M(zerodown.rollout.rollback).
      - A last weight below 100 is followed by 100. Weights may not decrease.
    type: list
    elements: dict
    suboptions:
      weight:
        description:
          - Percent (0 to 100) of the requests the new revision gets in this step; the weights of both
            revisions' members together make that share (whole HAProxy weights of at most 256, so it is
            exact to within a point).
        type: int
      duration:
        description:
          - Seconds to hold the step while the analysis reads the counters every O(analysis.interval). A
            failure ends the step at once; a pass, or an inconclusive verdict, at the end. V(0) or omitted
            moves on at once, without analysis. Refused on a step of weight 0 or 100 (one revision takes every
            request, so there is nothing to compare).
        type: float
      pause:
        description:
          - V(true) makes this step a pause (no O(steps[].weight) or O(steps[].duration) with it).
        type: bool
  analysis:
    description:
      - How each step with a O(steps[].duration) is judged, from the load balancer's own per-server counters
        (HAProxy's C(show stat) of the new revision's servers against the old ones'), so that it reflects
        the users' real requests, or from a sample of each member (O(analysis.sample), for nginx).
        A failed step sets the new revision's weight to 0 at once, drains and removes its containers,
        gives the old revision all requests back, and fails the task with the numbers (C(analysis),
        C(steps)).
      - Refused when no step has a O(steps[].duration) (nothing would be judged).
      - The error count is 5xx answers plus connection and response errors. Counters start again from 0
        when HAProxy reloads; the requests the old worker answered after a reload are left out of the step.
    type: dict
    suboptions:
      max_error_rate:
        description:
          - The largest share of the new revision's requests that may fail (0.05 is 5 %); V(0) allows none.
            Default V(0.05).
        type: float
      max_error_rate_increase:
        description:
          - How far the new revision's error rate may be above the old one's in the same step, when the old
            revision answered at least O(analysis.min_requests). Default V(0.02).
        type: float
      max_latency_ratio:
        description:
          - The new revision's average response time over the old one's at most (V(1.5) is 50 % slower);
            differences below 5 ms never fail a step (HAProxy counts whole milliseconds). Omitted, latency
            is not judged.
        type: float
      min_requests:
        description:
          - Requests the new revision must have answered in the step before the step can pass or fail;
            with fewer the verdict is V(inconclusive). Default V(20).
        type: int
      interval:
        description:
          - Seconds between two reads of the counters. Default V(1).
        type: float
      on_inconclusive:
        description:
          - What an inconclusive step does at its end; it never promotes by itself. V(pause) ends the run
            there (as a pause step does), V(fail) fails it as a failed analysis does, V(continue) goes on to
            the next step. Default V(pause).
        type: str
        choices: [pause, fail, continue]
      sample:
        description:
          - Judge each step from a sample of every member instead of the load balancer's counters. At every
            read, O(analysis.sample.requests) GET requests to O(analysis.sample.path) on each member of the
            pool (new and old revision), at the address the load balancer reaches it by, counted as HAProxy
            counts its servers' requests.
          - Needed for steps with a O(steps[].duration) on nginx, which keeps no per-server counters. Synthetic
            traffic; it sees one path, not the users' requests.
        type: dict
        suboptions:
          path:
            description:
              - The path sampled, starting with C(/) (for example the one the app answers its version on).
            type: str
          requests:
            description:
              - Requests to each member at every read. Default V(10).
            type: int
          timeout:
            description:
              - Seconds a sampled request may take before it counts as an error. Default V(2).
            type: float
"""
