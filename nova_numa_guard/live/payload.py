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

"""The live-data payload: what the agent publishes and the scheduler trusts.

One JSON object per compute host (schema 1)::

    {"schema": 1,
     "host": "<nova compute host name>",
     "timestamp": <epoch seconds, float>,
     "guests_mb": 98304,
     "nodes": [{"id": 0,
                "cpus": [0, 1, ...],
                "mem_total_mb": 64328,
                "mem_free_mb": 10501,
                "mem_available_mb": 14285,
                "guest_untouched_mb": 6144,
                "hugepages": {"2048": {"total": 0, "free": 0}},
                "distances": [10, 21]}, ...],
     "devices": [{"address": "0000:81:00.0", "numa_node": 1,
                  "class": "0x020000", "vendor_id": "8086",
                  "product_id": "1528", "net": ["ens1f0"]}, ...],
     "physnets": {"physnet1": [1], "physnet2": [0, 1]},
     "signature": "<hex HMAC-SHA256>"}

Memory figures are MiB, rounded down, per NUMA node:

* ``mem_total_mb``: the node's ``MemTotal``.
* ``mem_free_mb``: the node's ``MemFree``: pages nobody uses. This is what a
  guest without a NUMA topology gets *locally* right now: with the kernel's
  default ``vm.zone_reclaim_mode = 0`` a page fault that finds no free page on
  its node is served from another node before the node's page cache is
  reclaimed.
* ``mem_available_mb``: ``MemFree + Inactive(file) + SReclaimable``: free
  pages plus the clean-ish page cache on the inactive list and reclaimable
  slab, i.e. what the kernel can give a process whose memory is *bound* to the
  node before it has to swap or OOM-kill. Active page cache, shared memory
  (tmpfs, on the anonymous lists) and anonymous memory are not counted.
* ``guest_untouched_mb`` (optional): memory that running guests were given
  but have not touched yet, charged to this node. Guests touch their memory
  gradually after boot, and until they do the kernel shows it as free; it is
  promised all the same. A guest's untouched memory (its size less what is
  resident) is charged to the nodes its memory already is on, in proportion,
  because the kernel allocates a process's new pages next to its running
  threads and NUMA balancing keeps those next to its memory. A guest with
  nothing resident yet is charged to the node with the most memory left
  after what is charged there already (largest guests first): the node where
  a process that fits one node settles. Hugepage-backed guests are resident
  from the start and are not counted.
* ``guests_mb`` (optional, top level): the total size of the guests libvirt
  runs on the host. The scheduler compares it with the guest memory nova
  accounts to the host, to charge what nova placed since the payload (or what
  has not started yet).

The two optional fields come together (an agent that can read libvirt and
cgroup v2) or not at all (an older agent, or a host without them): then
every node lacks ``guest_untouched_mb`` and there is no ``guests_mb``.

``physnets`` (optional, top level) maps each neutron physical network of
``[numa_guard_agent] physnet_interfaces`` to the sorted ids of the nodes its
NICs sit on (empty when the firmware does not say). ``NUMALocalityWeigher``
uses it for a physnet nova affines to no cell of the host (nova learns that
only from ``[neutron_physnet_<name>] numa_nodes`` on the compute). An agent
without the option leaves it out.

``signature`` is present when ``[numa_guard] payload_signing_key`` is set:
the hex HMAC-SHA256 of the *canonical* JSON of every other field (keys sorted,
separators ``,`` and ``:``, ASCII only, as :func:`canonical` makes it), keyed
with the *host's own key* (:func:`host_key`): the hex HMAC-SHA256 of the host
name keyed with ``payload_signing_key``. A compute host that holds only its
own key cannot sign a payload for another host, and a payload signed for one
host never verifies for another. The signature is the last member of the
stored object (:func:`encode`), so the scheduler checks the HMAC over the
stored bytes before it parses any JSON; trailing whitespace (the newline of
``--print``) is ignored.

The *memory record* (:func:`memory_record`) is what the scheduler reads of a
payload, compact and signed on its own: the same top-level members without
``devices`` (``physnets`` included), and instead of ``nodes`` one ``mem`` row
per node (shown as JSON)::

    {"schema": 1, "host": "compute1", "timestamp": 1764700000.1,
     "guests_mb": 98304,
     "mem": [[0, 64328, 10501, 14285, 6144], [1, 64510, 2769, 7854, 0]],
     "physnets": {"physnet1": [1]}}

with the columns ``id, mem_total_mb, mem_free_mb, mem_available_mb`` and,
when the record has ``guests_mb``, ``guest_untouched_mb``. The agent stores
it next to the full payload as msgpack (:func:`encode_record`): one array of
the members' values in the order of ``RECORD_MEMBERS``::

    [1, "compute1", 1764700000.1, 98304,
     [[0, 64328, 10501, 14285, 6144], [1, 64510, 2769, 7854, 0]],
     {"physnet1": [1]}]

``nil`` for ``guests_mb`` or ``physnets`` when the record has none; members
after these are ignored, so that a later agent may add some. Signed, the
array is preceded by the HMAC-SHA256 of its bytes (keyed with the host's own
key) as a 32-byte msgpack ``bin``. The ``cache`` memory source fetches only
this record, so a scheduling request moves and unpacks about 70 bytes for a
two-node host instead of parsing kilobytes of JSON; unpacking and checking
it costs 60 to 80% of parsing and checking the same record as JSON, which
:func:`verify` still reads (agents of the previous release store their
records as JSON, signed as payloads are). A stored value is msgpack
when its first byte starts a msgpack array or ``bin``, which no JSON
document does.

The scheduler checks only what it uses (:func:`verify`): the schema version,
the host, the timestamp, the node ids, the memory figures and the physnets'
nodes. ``cpus``, ``distances``, ``hugepages`` and ``devices`` may be absent;
when present they must have the right container types, and their elements
are checked only with ``full=True`` (the agent checks its own payload that
way).

Nothing here imports nova or reads configuration.
"""

import hmac
import json
import math

import msgpack

SCHEMA = 1
MAX_BYTES = 1024 * 1024
# A node of more than 64 TiB, or more than 4096 nodes, CPUs per node beyond
# 2**16, are not a real machine: such numbers are refused.
MAX_NODE_MB = 64 * 1024 * 1024
MAX_NODES = 4096
MAX_CPU_ID = 2 ** 16
MAX_DEVICES = 4096
MAX_PAGES = 2 ** 40
# How far in the future a timestamp may be (clock skew between hosts).
MAX_CLOCK_SKEW = 5.0

# A memory record (the scheduler's part) is at most this large: a few
# hundred bytes per node.
MAX_RECORD_BYTES = 64 * 1024
# The guests of a host: at most this much memory in all.
MAX_GUESTS_MB = MAX_NODES * MAX_NODE_MB
# At most this many physnets, named in at most 64 characters (neutron's
# limit for a physical network name).
MAX_PHYSNETS = 256
MAX_PHYSNET_NAME = 64

_INT = frozenset((int,))
_TOP_KEYS = frozenset(('schema', 'host', 'timestamp'))
_NODE_MB_KEYS = ('mem_total_mb', 'mem_free_mb', 'mem_available_mb')
# A memory record's "mem" rows: these columns, and guest_untouched_mb when
# the record has guests_mb.
MEM_COLUMNS = ('id',) + _NODE_MB_KEYS
# The members of a stored memory record (encode_record()), in order.
RECORD_MEMBERS = ('schema', 'host', 'timestamp', 'guests_mb', 'mem',
                  'physnets')
_UNTOUCHED = 'guest_untouched_mb'
_GUESTS = 'guests_mb'
_PHYSNETS = 'physnets'

# Reason codes of Untrusted, stable for tests and log searches.
TOO_LARGE = 'too large'
NOT_JSON = 'not JSON'
NOT_MSGPACK = 'not msgpack'
BAD_SCHEMA = 'schema mismatch'
UNSIGNED = 'unsigned'
BAD_SIGNATURE = 'bad signature'
WRONG_HOST = 'wrong host'
FUTURE = 'timestamp in the future'
STALE = 'stale'
INSANE = 'implausible numbers'


class Untrusted(ValueError):
    """A payload that must not be used.

    :ivar code: one of the reason codes of this module (``stale``...).
    :ivar detail: one line with the specifics.
    """

    def __init__(self, code, detail):
        self.code = code
        self.detail = detail
        super().__init__('%s: %s' % (code, detail))


class Trusted:
    """A payload that passed every trust rule.

    Kept by the memory sources while the host's stored bytes do not change,
    so that a request over unchanged payloads reuses what earlier requests
    derived from it (:attr:`derived`).

    :ivar host: the compute host name.
    :ivar timestamp: epoch seconds when the agent read the data.
    :ivar free_mb: ``{node_id: mem_free_mb}``.
    :ivar available_mb: ``{node_id: mem_available_mb}``.
    :ivar untouched_mb: ``{node_id: guest_untouched_mb}``, or None when the
        payload does not say (an older agent, no libvirt or cgroup v2 data).
    :ivar guests_mb: the total size of the host's guests, or None likewise.
    :ivar physnets: ``{physnet: frozenset(node ids)}`` of the host's NICs,
        or None when the payload has none (the agent's
        ``[numa_guard_agent] physnet_interfaces`` is not set).
    :ivar derived: free for the scheduler to keep what it last derived
        from the payload (the filter that owns the source); None at first.
    """

    _FIELDS = ('host', 'timestamp', 'free_mb', 'available_mb',
               'untouched_mb', 'guests_mb', 'physnets')
    __slots__ = _FIELDS + ('derived',)

    def __init__(self, host, timestamp, free_mb, available_mb, untouched_mb,
                 guests_mb, physnets=None):
        self.host = host
        self.timestamp = timestamp
        self.free_mb = free_mb
        self.available_mb = available_mb
        self.untouched_mb = untouched_mb
        self.guests_mb = guests_mb
        self.physnets = physnets
        self.derived = None

    def _values(self):
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other):
        if type(other) is not Trusted:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        return hash((self.host, self.timestamp))

    def __repr__(self):
        return 'Trusted(%s)' % ', '.join(
            '%s=%r' % (name, getattr(self, name)) for name in self._FIELDS)


def available_mb(total_mb, free_mb, inactive_file_mb=0, sreclaimable_mb=0):
    """A node's ``mem_available_mb`` from its meminfo figures in MiB.

    ``MemFree + Inactive(file) + SReclaimable``, capped at ``MemTotal``, in
    whole MiB rounded down. The one place the formula lives: the agent
    (sysfs, kB / 1024) and the vNUMA helper (``numastat -m``, MB with two
    decimals) both use it.
    """
    return math.floor(min(total_mb, free_mb + inactive_file_mb +
                          sreclaimable_mb))


def canonical(payload):
    """The bytes that are signed: canonical JSON without ``signature``."""
    body = {k: v for k, v in payload.items() if k != 'signature'}
    return json.dumps(body, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True, allow_nan=False).encode('ascii')


def host_key(key, host):
    """The signing key of one host, derived from ``payload_signing_key``.

    :returns: the hex HMAC-SHA256 of ``host`` (UTF-8) keyed with ``key``, as
        a str; its ASCII bytes are the HMAC key of the host's payloads.
    """
    return _mac(key, host.encode('utf-8')).hex()


def signature(payload, key):
    """Hex HMAC-SHA256 of :func:`canonical` ``(payload)`` keyed by ``key``.

    :param key: the host's own key (:func:`host_key`).
    """
    return _mac(key, canonical(payload)).hex()


def build(host, timestamp, nodes, devices=(), key=None, guests_mb=None,
          physnets=None):
    """Assemble a payload dict, signed when ``key`` is given.

    :param nodes: node dicts as in the module docstring.
    :param devices: device dicts as in the module docstring.
    :param key: the host's own key (:func:`host_key`), or None.
    :param guests_mb: the total size of the host's guests, or None when
        the nodes carry no ``guest_untouched_mb``.
    :param physnets: ``{physnet: [node id, ...]}``, or None to leave the
        field out.
    """
    payload = {'schema': SCHEMA, 'host': host, 'timestamp': timestamp,
               'nodes': list(nodes), 'devices': list(devices)}
    if guests_mb is not None:
        payload[_GUESTS] = guests_mb
    if physnets is not None:
        payload[_PHYSNETS] = {name: sorted(nodes)
                              for name, nodes in physnets.items()}
    if key:
        payload['signature'] = signature(payload, key)
    return payload


def memory_record(payload, key=None):
    """The scheduler's part of a payload, compact and signed on its own.

    The nodes become ``mem`` rows of ``[id, mem_total_mb, mem_free_mb,
    mem_available_mb]``, plus ``guest_untouched_mb`` when the payload has
    ``guests_mb``: a few bytes per node, and quick to parse and check.
    ``cpus``, ``distances``, ``hugepages`` and ``devices`` are left out;
    ``physnets`` is kept.

    :param key: the host's own key (:func:`host_key`), or None.
    """
    columns = MEM_COLUMNS
    if _GUESTS in payload:
        columns += (_UNTOUCHED,)
    record = {name: value for name, value in payload.items()
              if name not in ('nodes', 'devices', 'signature')}
    record['mem'] = [[node[name] for name in columns]
                     for node in payload['nodes']]
    if key:
        record['signature'] = signature(record, key)
    return record


def encode(payload):
    """The payload as the bytes the agent stores.

    :func:`canonical` JSON, with ``signature`` (when present) appended as the
    last member: the stored bytes before it are exactly what was signed, so
    the scheduler checks the HMAC before parsing anything.
    """
    body = canonical(payload)
    sig = payload.get('signature')
    if sig is None:
        return body
    return body[:-1] + b',"signature":' + json.dumps(sig).encode() + b'}'


def encode_record(payload, key=None):
    """The memory record of ``payload`` as the agent stores it: msgpack.

    The :func:`memory_record` members' values as one msgpack array, in the
    order of ``RECORD_MEMBERS`` (``nil`` for an absent member); signed, the
    HMAC-SHA256 of those bytes (keyed with the host's own key) comes first
    as a 32-byte msgpack ``bin``: the scheduler checks it before it unpacks
    anything. An array rather than a map: no member names to unpack and
    compare, and a third fewer bytes to fetch.

    :param key: the host's own key (:func:`host_key`), or None.
    """
    record = memory_record(payload)
    body = msgpack.packb([record.get(name) for name in RECORD_MEMBERS],
                         use_bin_type=True)
    if not key:
        return body
    return _RECORD_SIG_HEAD + _mac(key, body) + body


def verify(raw, host, key=None, max_age=None, now=None, full=False,
           max_bytes=MAX_BYTES):
    """Check a stored payload against every trust rule.

    :param raw: bytes (or str) as fetched from the store.
    :param host: the compute host it was fetched for.
    :param key: the host's own key (:func:`host_key` of ``[numa_guard]
        payload_signing_key``); when set the payload must carry a valid
        signature, checked before anything is parsed: the last member of a
        JSON payload, the first bytes of a msgpack record.
    :param max_age: seconds; older payloads are stale. None: no age limit.
    :param now: epoch seconds (``time.time()`` of the caller); None: the
        time rules are not checked (see :func:`check_age`).
    :param full: also check the elements of ``cpus``, ``distances``,
        ``hugepages`` and ``devices``, which the scheduler does not use.
    :param max_bytes: the largest payload accepted (``MAX_RECORD_BYTES``
        for a memory record).
    :returns: :class:`Trusted`.
    :raises Untrusted: with the reason; never anything else.
    """
    try:
        return _verify(raw, host, key, max_age, now, full, max_bytes)
    except Untrusted:
        raise
    except Exception as exc:  # a rule we did not foresee: still not trusted
        raise Untrusted(BAD_SCHEMA, 'unreadable payload (%s)' %
                        type(exc).__name__)


def _verify(raw, host, key, max_age, now, full, max_bytes):
    if isinstance(raw, str):
        raw = raw.encode('utf-8', 'surrogatepass')
    if not isinstance(raw, (bytes, bytearray)):
        raise Untrusted(NOT_JSON, 'stored value is a %s, not bytes' %
                        type(raw).__name__)
    if len(raw) > max_bytes:
        raise Untrusted(TOO_LARGE, '%d bytes, more than %d' %
                        (len(raw), max_bytes))
    if raw and raw[0] in _MSGPACK_FIRST:
        return _verify_record(_unpack_record(bytes(raw), key), host,
                              max_age, now)
    if key:
        raw = _check_signature(raw, key)
    try:
        data = _DECODER.decode(raw.decode('utf-8'))
    except (ValueError, RecursionError) as exc:
        raise Untrusted(NOT_JSON, _first_line(exc))
    if not isinstance(data, dict):
        raise Untrusted(BAD_SCHEMA, 'top level is a %s, not an object' %
                        type(data).__name__)
    _check_head(data.get('schema'), data.get('host'), host)
    if not _TOP_KEYS.issubset(data):
        raise Untrusted(BAD_SCHEMA, 'missing %s' % ', '.join(
            sorted(_TOP_KEYS.difference(data))))
    timestamp = data['timestamp']
    guests = data.get(_GUESTS)
    _check_times(timestamp, guests, max_age, now)
    if 'mem' in data:
        if 'nodes' in data:
            raise Untrusted(BAD_SCHEMA, 'both nodes and mem')
        free, available, untouched = _check_rows(data['mem'],
                                                 guests is not None)
    elif 'nodes' in data:
        free, available, untouched = _check_nodes(data['nodes'], full,
                                                  guests is not None)
    else:
        raise Untrusted(BAD_SCHEMA, 'missing nodes')
    if 'devices' in data:
        _check_devices(data['devices'], full)
    physnets = None
    if _PHYSNETS in data:
        physnets = _check_physnets(data[_PHYSNETS])
    return Trusted(host, timestamp, free, available, untouched, guests,
                   physnets)


def _verify_record(data, host, max_age, now):
    """A msgpack memory record's array (:func:`encode_record`)."""
    if type(data) is not list or len(data) < len(RECORD_MEMBERS):
        raise Untrusted(BAD_SCHEMA, 'a msgpack memory record is an array of '
                        '%d members, not a %s%s' % (
                            len(RECORD_MEMBERS), type(data).__name__,
                            ' of %d' % len(data)
                            if type(data) in (list, dict) else ''))
    schema, name, timestamp, guests, rows, physnets = (
        data if len(data) == len(RECORD_MEMBERS)
        else data[:len(RECORD_MEMBERS)])
    _check_head(schema, name, host)
    _check_times(timestamp, guests, max_age, now)
    free, available, untouched = _check_rows(rows, guests is not None)
    if physnets is not None:
        physnets = _check_physnets(physnets)
    return Trusted(host, timestamp, free, available, untouched, guests,
                   physnets)


def _check_head(schema, name, host):
    """The schema version, and the host the payload names."""
    if schema != SCHEMA or type(schema) is not int:
        raise Untrusted(BAD_SCHEMA, 'schema %s, expected %d' %
                        (_short(schema), SCHEMA))
    if name != host:
        raise Untrusted(WRONG_HOST, 'payload names host %s' % _short(name))


def _check_times(timestamp, guests, max_age, now):
    """The timestamp (and its age when ``now`` is given), ``guests_mb``."""
    if (type(timestamp) not in (int, float) or not math.isfinite(timestamp)
            or timestamp < 0):
        raise Untrusted(BAD_SCHEMA, 'timestamp %s is not epoch seconds' %
                        _short(timestamp))
    if now is not None:
        check_age(timestamp, max_age, now)
    if guests is not None:
        if type(guests) is not int:
            raise Untrusted(BAD_SCHEMA, 'guests_mb %s is not an integer' %
                            _short(guests))
        if not 0 <= guests <= MAX_GUESTS_MB:
            raise Untrusted(INSANE, 'guests_mb %d is negative or more than '
                            '%d MB' % (guests, MAX_GUESTS_MB))


def check_age(timestamp, max_age, now):
    """The time rules alone (for a payload verified earlier).

    :raises Untrusted: ``timestamp in the future`` beyond
        ``MAX_CLOCK_SKEW``, or ``stale`` when older than ``max_age``.
    """
    if timestamp > now + MAX_CLOCK_SKEW:
        raise Untrusted(FUTURE, '%.1f s ahead of this host' %
                        (timestamp - now))
    if max_age is not None and now - timestamp > max_age:
        raise Untrusted(STALE, '%.0f s old, [numa_guard] max_data_age '
                        'is %s s' % (now - timestamp, max_age))


# The first byte of a msgpack memory record (encode_record()): an array,
# or the bin8 header of its signature. A JSON document starts otherwise.
_RECORD_SIG_HEAD = b'\xc4\x20'
_RECORD_SIG_BYTES = len(_RECORD_SIG_HEAD) + 32
_MSGPACK_FIRST = frozenset(list(range(0x90, 0xa0)) +
                           [0xdc, 0xdd, _RECORD_SIG_HEAD[0]])

_NO_SIGNATURE = 'no signature but [numa_guard] payload_signing_key is set'
_WRONG_SIGNATURE = ("HMAC-SHA256 does not match the host's key derived from "
                    '[numa_guard] payload_signing_key')

# The stored layout of a signed payload ends with this member (encode()).
_SIG_HEAD = b',"signature":"'
_SIG_HEX = 64
_SIG_TAIL = len(_SIG_HEAD) + _SIG_HEX + 2


def _check_signature(raw, key):
    """Check the HMAC over the stored bytes, before any JSON is parsed.

    :returns: the signed bytes (the payload without ``signature``).
    """
    body = raw.rstrip()
    tail = body[-_SIG_TAIL:]
    if (len(body) <= _SIG_TAIL or not tail.startswith(_SIG_HEAD)
            or not tail.endswith(b'"}')):
        if b'"signature"' in raw:
            raise Untrusted(BAD_SIGNATURE, 'signature is not the last member '
                            'as nova-numa-guard-agent stores it')
        raise Untrusted(UNSIGNED, _NO_SIGNATURE)
    sig = tail[len(_SIG_HEAD):-2]
    signed = body[:-_SIG_TAIL] + b'}'
    if not hmac.compare_digest(sig, _mac(key, signed).hex().encode('ascii')):
        raise Untrusted(BAD_SIGNATURE, _WRONG_SIGNATURE)
    return signed


def _unpack_record(raw, key):
    """A msgpack memory record (:func:`encode_record`), its HMAC first.

    Without a key, a signature is skipped unread (as a JSON payload's
    ``signature`` member is).
    """
    signed = raw[:len(_RECORD_SIG_HEAD)] == _RECORD_SIG_HEAD
    body = raw[_RECORD_SIG_BYTES:] if signed else raw
    if key:
        if not signed:
            raise Untrusted(UNSIGNED, _NO_SIGNATURE)
        if not hmac.compare_digest(raw[len(_RECORD_SIG_HEAD):
                                       _RECORD_SIG_BYTES], _mac(key, body)):
            raise Untrusted(BAD_SIGNATURE, _WRONG_SIGNATURE)
    try:
        # Strings as str, maps with str keys only, at most as long as the
        # record (msgpack's own limits follow its size).
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:
        raise Untrusted(NOT_MSGPACK, _first_line(exc))


def _key_bytes(key):
    return key.encode('utf-8') if isinstance(key, str) else key


def _mac(key, data):
    """The HMAC-SHA256 of ``data`` keyed with ``key`` (str or bytes)."""
    return hmac.digest(_key_bytes(key), data, 'sha256')


def _check_nodes(nodes, full, with_guests):
    """The node figures; ``guest_untouched_mb`` on every node or none.

    :param with_guests: whether the payload has ``guests_mb``, which comes
        with ``guest_untouched_mb`` on every node.
    :returns: ``(free, available, untouched or None)``, ``{node_id: MB}``.
    """
    if type(nodes) is not list or not nodes:
        raise Untrusted(BAD_SCHEMA, 'nodes is not a non-empty list')
    if len(nodes) > MAX_NODES:
        raise Untrusted(INSANE, '%d nodes' % len(nodes))
    free = {}
    available = {}
    untouched = {} if with_guests else None
    # A node with more keys than its memory figures has lists to check.
    plain = 5 if with_guests else 4
    for node in nodes:
        # The fast path checks every rule at once; the slow one finds which
        # rule a node breaks, to say so.
        if type(node) is not dict:
            raise Untrusted(BAD_SCHEMA, 'a node is not an object')
        node_id = node.get('id')
        total = node.get('mem_total_mb')
        mem_free = node.get('mem_free_mb')
        mem_avail = node.get('mem_available_mb')
        if not (type(node_id) is int and type(total) is int and
                type(mem_free) is int and type(mem_avail) is int and
                0 <= node_id < MAX_NODES and node_id not in free and
                0 <= mem_free <= mem_avail <= total <= MAX_NODE_MB):
            _node_problem(node, free)
        if with_guests:
            mb = node.get(_UNTOUCHED)
            if type(mb) is not int or not 0 <= mb <= MAX_NODE_MB:
                _node_mb(node, node_id, _UNTOUCHED)
            untouched[node_id] = mb
        elif _UNTOUCHED in node:
            raise Untrusted(BAD_SCHEMA, 'node %d: guest_untouched_mb without '
                            'guests_mb' % node_id)
        if len(node) > plain or full:
            _check_node_lists(node, node_id, full)
        free[node_id] = mem_free
        available[node_id] = mem_avail
    return free, available, untouched


def _check_rows(rows, with_guests):
    """The ``mem`` rows of a memory record; see :func:`_check_nodes`."""
    if type(rows) is not list or not rows:
        raise Untrusted(BAD_SCHEMA, 'mem is not a non-empty list')
    if len(rows) > MAX_NODES:
        raise Untrusted(INSANE, '%d nodes' % len(rows))
    width = len(MEM_COLUMNS) + (1 if with_guests else 0)
    free = {}
    available = {}
    untouched = {} if with_guests else None
    for row in rows:
        if type(row) is not list or len(row) != width:
            raise Untrusted(BAD_SCHEMA, 'a mem row is not a list of %d '
                            'numbers' % width)
        if with_guests:
            node_id, total, mem_free, mem_avail, mb = row
        else:
            node_id, total, mem_free, mem_avail = row
            mb = 0
        if not (type(node_id) is int and type(total) is int and
                type(mem_free) is int and type(mem_avail) is int and
                type(mb) is int and
                0 <= node_id < MAX_NODES and node_id not in free and
                0 <= mem_free <= mem_avail <= total <= MAX_NODE_MB and
                0 <= mb <= MAX_NODE_MB):
            node = dict(zip(MEM_COLUMNS + (_UNTOUCHED,), row))
            _node_problem(node, free)
            _node_mb(node, node_id, _UNTOUCHED)  # the one rule left
        if with_guests:
            untouched[node_id] = mb
        free[node_id] = mem_free
        available[node_id] = mem_avail
    return free, available, untouched


def _node_problem(node, seen):
    """Raise :class:`Untrusted` for the first node rule a node breaks.

    Returns when its id and memory figures break none.
    """
    node_id = node.get('id')
    if type(node_id) is not int:
        raise Untrusted(BAD_SCHEMA, 'node id %s is not an integer' %
                        _short(node_id))
    if not 0 <= node_id < MAX_NODES or node_id in seen:
        raise Untrusted(INSANE, 'node id %d is out of range or listed '
                        'twice' % node_id)
    total, mem_free, mem_avail = [_node_mb(node, node_id, name)
                                  for name in _NODE_MB_KEYS]
    if not mem_free <= mem_avail <= total:
        raise Untrusted(INSANE, 'node %d: expected mem_free_mb %d <= '
                        'mem_available_mb %d <= mem_total_mb %d' %
                        (node_id, mem_free, mem_avail, total))


def _check_node_lists(node, node_id, full):
    """``cpus``, ``distances`` and ``hugepages``, where they are present."""
    for name, kind in (('cpus', list), ('distances', list),
                       ('hugepages', dict)):
        if name in node and type(node[name]) is not kind:
            raise Untrusted(BAD_SCHEMA, 'node %d: %s is not a%s %s' % (
                node_id, name, 'n' if kind is dict else '',
                'object' if kind is dict else 'list'))
    if full:
        _check_int_list(node.get('cpus'), node_id, 'cpus', MAX_CPU_ID)
        _check_int_list(node.get('distances'), node_id, 'distances', 256)
        _check_hugepages(node.get('hugepages') or {}, node_id)


def _node_mb(node, node_id, name):
    value = node.get(name)
    if type(value) is not int:
        raise Untrusted(BAD_SCHEMA, 'node %d: %s %s is not an integer' %
                        (node_id, name, _short(value)))
    if not 0 <= value <= MAX_NODE_MB:
        raise Untrusted(INSANE, 'node %d: %s %d is negative or more than '
                        '%d MB' % (node_id, name, value, MAX_NODE_MB))
    return value


def _check_int_list(values, node_id, name, limit):
    if not values:  # absent or empty
        return
    # map/min/max run in C: this is on the scheduler's path for every host.
    if not set(map(type, values)) <= _INT:
        raise Untrusted(BAD_SCHEMA, 'node %d: %s holds a non-integer' %
                        (node_id, name))
    if min(values) < 0 or max(values) > limit:
        raise Untrusted(INSANE, 'node %d: %s holds %d..%d' %
                        (node_id, name, min(values), max(values)))


def _check_hugepages(pages, node_id):
    for size, counts in pages.items():
        if (type(size) is not str or not size.isdigit() or
                type(counts) is not dict):
            raise Untrusted(BAD_SCHEMA, 'node %d: hugepages entry %s' %
                            (node_id, _short(size)))
        total, free = counts.get('total'), counts.get('free')
        if type(total) is not int or type(free) is not int:
            raise Untrusted(BAD_SCHEMA, 'node %d: hugepages %s kB counts '
                            'are not integers' % (node_id, size))
        if not 0 <= free <= total <= MAX_PAGES:
            raise Untrusted(INSANE, 'node %d: hugepages %s kB free %d, '
                            'total %d' % (node_id, size, free, total))


def _check_devices(devices, full):
    if type(devices) is not list:
        raise Untrusted(BAD_SCHEMA, 'devices is not a list')
    if not full:
        return
    if len(devices) > MAX_DEVICES:
        raise Untrusted(INSANE, '%d devices' % len(devices))
    for device in devices:
        if type(device) is not dict or not isinstance(
                device.get('address'), str):
            raise Untrusted(BAD_SCHEMA, 'a device has no address')
        numa_node = device.get('numa_node')
        if numa_node is not None and (type(numa_node) is not int or
                                      not 0 <= numa_node < MAX_NODES):
            raise Untrusted(BAD_SCHEMA, 'device %s: numa_node %s' %
                            (_short(device['address']), _short(numa_node)))


def _check_physnets(physnets):
    """``{physnet: [node id, ...]}`` as ``{physnet: frozenset(ids)}``."""
    if type(physnets) is not dict:
        raise Untrusted(BAD_SCHEMA, 'physnets is not an object')
    if len(physnets) > MAX_PHYSNETS:
        raise Untrusted(INSANE, '%d physnets' % len(physnets))
    checked = {}
    for name, nodes in physnets.items():
        # str: msgpack maps may have bytes keys too.
        if type(name) is not str or not 0 < len(name) <= MAX_PHYSNET_NAME:
            raise Untrusted(BAD_SCHEMA, 'physnet name %s is empty or longer '
                            'than %d characters' % (_short(name),
                                                    MAX_PHYSNET_NAME))
        if type(nodes) is not list or not set(map(type, nodes)) <= _INT:
            raise Untrusted(BAD_SCHEMA, 'physnet %s: nodes are not a list of '
                            'integers' % _short(name))
        ids = frozenset(nodes)
        if len(ids) != len(nodes) or (nodes and not (
                0 <= min(nodes) and max(nodes) < MAX_NODES)):
            raise Untrusted(INSANE, 'physnet %s: node ids %s are out of range '
                            'or listed twice' % (_short(name),
                                                 _short(nodes)))
        checked[name] = ids
    return checked


def _no_constant(name):
    raise ValueError('%s is not a number' % name)


# One decoder for every payload (json.loads with an argument builds one per
# call); NaN and Infinity are refused.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _short(value):
    """A value for a log line: repr cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def _first_line(exc):
    return str(exc).splitlines()[0][:120] if str(exc) else repr(exc)
