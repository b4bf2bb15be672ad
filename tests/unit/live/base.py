# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Shared set-up of the live source tests: config, payloads, a filter."""

import logging
import time

import fixtures
import nova.conf
from nova.scheduler import filters as nova_filters
from oslo_config import fixture as config_fixture

from nova_numa_guard.live import payload
from nova_numa_guard.live import store
from nova_numa_guard.scheduler.filters import numa_cell_fit
from tests import fake_sysfs
from tests import memcached_fixture
from tests import testcase
from tests.unit import fakes

CONF = nova.conf.CONF
SIXTEEN_GB = 16384


def two_node_payload(host, timestamp=None, key=None, free=None):
    """A two-node payload for ``host`` (the numastat figures of fake_sysfs).

    Node 0 has 10501 MB free and 14286 MB available, node 1 2769 and 7854,
    unless ``free`` says otherwise.
    """
    free = free or fake_sysfs.TWO_NODE_FREE_MB
    nodes = []
    for node_id, total in ((0, 64328), (1, 64510)):
        nodes.append({
            'id': node_id, 'cpus': list(range(node_id * 12,
                                              node_id * 12 + 12)),
            'mem_total_mb': total, 'mem_free_mb': free[node_id],
            'mem_available_mb': max(free[node_id],
                                    fake_sysfs.TWO_NODE_AVAILABLE_MB[node_id]),
            'hugepages': {}, 'distances': [10, 21]})
    return payload.build(host, time.time() if timestamp is None
                         else timestamp, nodes, [], key=key)


def record(host, timestamp=None, key=None, free=None):
    """The memory record of :func:`two_node_payload` as the agent stores it.

    Signed on its own with ``key`` when given.
    """
    return payload.encode_record(
        two_node_payload(host, timestamp, free=free), key)


class LiveSourceTestCase(testcase.TestCase):
    """Config through nova's CONF (as in nova-scheduler), log captured."""

    def setUp(self):
        super().setUp()
        self.config = self.useFixture(config_fixture.Config(CONF))
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_numa_guard', level=logging.DEBUG,
            format='%(levelname)s [%(name)s] %(message)s'))

    def flags(self, group='numa_guard', **kwargs):
        self.config.config(group=group, **kwargs)

    def use_memcached(self, count=1):
        """Start ``count`` memcached servers and point [cache] at them."""
        self.servers = [self.useFixture(memcached_fixture.Memcached())
                        for _ in range(count)]
        self.memcached = self.servers[0]
        self.flags(group='cache', backend='dogpile.cache.pymemcache',
                   memcache_servers=[m.url for m in self.servers])
        return self.memcached

    def writer(self):
        """A store over the [cache] servers, as the agent opens it."""
        return store.MemcacheStore.from_conf(CONF, 10.0)

    def publish_records(self, hosts, **kwargs):
        """Store the memory record of every host, as the agents would."""
        self.writer().set_many(
            {store.key(store.RECORD_PREFIX, host): record(host, **kwargs)
             for host in hosts}, 600)

    def host_states(self, count, prefix='compute'):
        return [fakes.host_state(fakes.two_node_cells(),
                                 name='%s%d' % (prefix, i))
                for i in range(count)]

    def run_filter(self, hosts, memory_mb=SIXTEEN_GB, vcpus=4,
                   numa_topology=None, filter_obj=None):
        """Run the filter through nova's real filter handler."""
        filter_obj = filter_obj or numa_cell_fit.NUMACellFitFilter()
        spec = fakes.request_spec(memory_mb, vcpus,
                                  numa_topology=numa_topology)
        result = nova_filters.HostFilterHandler().get_filtered_objects(
            [filter_obj], hosts, spec, index=0)
        return [h.host for h in result or []]
