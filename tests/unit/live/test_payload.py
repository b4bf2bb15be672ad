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

"""The live-data payload: schema, signature and every trust rule."""

import copy
import hmac
import json

import ddt
import fixtures
import hypothesis
from hypothesis import strategies as st
import msgpack

from nova_numa_guard.live import payload

from tests import testcase

NOW = 1_800_000_000.0
KEY = 'sekrit-key'
PROPERTY = hypothesis.settings(max_examples=200, deadline=None,
                               derandomize=True)


def two_node_payload(host='compute1', timestamp=NOW - 5, key=None,
                     untouched=None, guests_mb=None):
    """A two-node payload; ``untouched``: guest_untouched_mb per node."""
    nodes = [
        {'id': 0, 'cpus': [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17],
         'mem_total_mb': 64328, 'mem_free_mb': 10501,
         'mem_available_mb': 14286,
         'hugepages': {'2048': {'total': 0, 'free': 0}},
         'distances': [10, 21]},
        {'id': 1, 'cpus': [6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23],
         'mem_total_mb': 64510, 'mem_free_mb': 2769,
         'mem_available_mb': 7854,
         'hugepages': {'2048': {'total': 0, 'free': 0}},
         'distances': [21, 10]},
    ]
    devices = [{'address': '0000:81:00.0', 'numa_node': 1,
                'class': '0x020000', 'vendor_id': '8086',
                'product_id': '1528', 'net': ['ens1f0']}]
    for node, mb in zip(nodes, untouched or ()):
        node['guest_untouched_mb'] = mb
    return payload.build(host, timestamp, nodes, devices, key=key,
                         guests_mb=guests_mb)


def with_guests(key=None):
    """A payload with both guest fields (an agent that reads libvirt)."""
    return two_node_payload(key=key, untouched=[6144, 0], guests_mb=98304)


def raw(data):
    return payload.encode(data)


def packed(record):
    """A record dict as the agent stores it, whatever its members hold."""
    return msgpack.packb([record.get(name) for name in
                          payload.RECORD_MEMBERS], use_bin_type=True)


class AvailableTest(testcase.TestCase):

    def test_available_is_capped_and_rounded_down(self):
        """Ensures MemFree + Inactive(file) + SReclaimable, capped, floored."""
        self.assertEqual(14286, payload.available_mb(64328.18, 10501.73,
                                                     3000.5, 784.0))
        self.assertEqual(100, payload.available_mb(100, 90, 20, 5))
        self.assertEqual(0, payload.available_mb(10, 0.99))
        self.assertEqual(14286, payload.available_mb(
            65872056 / 1024, 14629119 / 1024, 0, 0))


class VerifyTest(testcase.TestCase):

    def assert_untrusted(self, code, value, host='compute1', key=None,
                         max_age=30):
        exc = self.assertRaises(payload.Untrusted, payload.verify, value,
                                host, key, max_age, NOW)
        self.assertEqual(code, exc.code, str(exc))
        return exc

    def test_two_node_payload_is_trusted(self):
        """Ensures a fresh, well-formed payload yields both memory figures."""
        trusted = payload.verify(raw(two_node_payload()), 'compute1', None, 30,
                                 NOW)
        self.assertEqual({0: 10501, 1: 2769}, trusted.free_mb)
        self.assertEqual({0: 14286, 1: 7854}, trusted.available_mb)
        self.assertEqual('compute1', trusted.host)

    def test_signed_payload_is_trusted_with_the_key(self):
        """Ensures a payload signed with the key verifies."""
        data = two_node_payload(key=KEY)
        self.assertEqual(64, len(data['signature']))
        trusted = payload.verify(raw(data), 'compute1', KEY, 30, NOW)
        self.assertEqual({0: 10501, 1: 2769}, trusted.free_mb)

    def test_signature_ignored_without_a_key(self):
        """Ensures a signed payload is usable by a scheduler with no key."""
        payload.verify(raw(two_node_payload(key=KEY)), 'compute1', None, 30,
                       NOW)

    def test_unsigned_payload_refused_when_a_key_is_set(self):
        """Ensures an unsigned payload is ignored when a key is configured."""
        self.assert_untrusted(payload.UNSIGNED, raw(two_node_payload()),
                              key=KEY)

    def test_forged_payload_refused(self):
        """Ensures a payload signed with another key is ignored."""
        self.assert_untrusted(payload.BAD_SIGNATURE,
                              raw(two_node_payload(key='other')), key=KEY)

    def test_tampered_payload_refused(self):
        """Ensures changing a signed figure breaks the signature."""
        data = two_node_payload(key=KEY)
        data['nodes'][1]['mem_free_mb'] = 60000
        data['nodes'][1]['mem_available_mb'] = 60000
        self.assert_untrusted(payload.BAD_SIGNATURE, raw(data), key=KEY)

    def test_signed_payload_must_keep_the_agents_layout(self):
        """Ensures a re-indented signed payload is refused, never parsed."""
        data = two_node_payload(key=KEY)
        self.assertTrue(raw(data).endswith(
            b',"signature":"%s"}' % data['signature'].encode()))
        pretty = json.dumps(data, indent=2).encode()
        loads = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload._DECODER.decode',
            side_effect=payload._DECODER.decode))
        exc = self.assert_untrusted(payload.BAD_SIGNATURE, pretty, key=KEY)
        self.assertIn('not the last member', exc.detail)
        self.assertEqual(0, loads.mock.call_count)

    def test_printed_payload_takes_the_fast_path(self):
        """Ensures --print's trailing newline still verifies, bytes only.

        The HMAC is checked over the stored bytes; the payload is never
        serialized again to check it.
        """
        printed = raw(two_node_payload(key=KEY)) + b'\n'
        canonical = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.canonical',
            side_effect=payload.canonical))
        trusted = payload.verify(printed, 'compute1', KEY, 30, NOW)
        self.assertEqual({0: 10501, 1: 2769}, trusted.free_mb)
        self.assertEqual(0, canonical.mock.call_count)

    def test_bad_signature_refused_before_parsing(self):
        """Ensures the HMAC is checked before json.loads sees the bytes."""
        data = two_node_payload(key=KEY)
        forged = raw(data).replace(b'10501', b'30501')
        loads = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload._DECODER.decode',
            side_effect=payload._DECODER.decode))
        self.assert_untrusted(payload.BAD_SIGNATURE, forged, key=KEY)
        self.assert_untrusted(payload.UNSIGNED, b'{"schema": 1' + b'[' * 50,
                              key=KEY)
        self.assertEqual(0, loads.mock.call_count)

    def test_oversized_value_refused_before_the_signature(self):
        """Ensures a value over 1 MiB is refused before any other check."""
        value = b' ' * (payload.MAX_BYTES + 1)
        hmac_new = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.hmac.new'))
        hmac_digest = self.useFixture(fixtures.MockPatch(
            'nova_numa_guard.live.payload.hmac.digest'))
        self.assert_untrusted(payload.TOO_LARGE, value, key=KEY)
        self.assertEqual((0, 0), (hmac_new.mock.call_count,
                                  hmac_digest.mock.call_count))

    def test_host_keys_differ_per_host(self):
        """Ensures each host gets its own key, derived from the secret."""
        key1 = payload.host_key(KEY, 'compute1')
        self.assertEqual(64, len(key1))
        self.assertEqual(key1, payload.host_key(KEY.encode(), 'compute1'))
        self.assertNotEqual(key1, payload.host_key(KEY, 'compute2'))
        self.assertNotEqual(key1, payload.host_key('other', 'compute1'))

    def test_payload_signed_with_another_hosts_key_refused(self):
        """Ensures compute2's key cannot sign a payload for compute1."""
        data = two_node_payload(key=payload.host_key(KEY, 'compute2'))
        self.assert_untrusted(payload.BAD_SIGNATURE, raw(data),
                              key=payload.host_key(KEY, 'compute1'))
        payload.verify(raw(two_node_payload(key=payload.host_key(
            KEY, 'compute1'))), 'compute1', payload.host_key(KEY, 'compute1'),
            30, NOW)

    def test_non_string_signature_refused(self):
        """Ensures a signature that is not a string is refused."""
        data = two_node_payload(key=KEY)
        data['signature'] = 12
        self.assert_untrusted(payload.BAD_SIGNATURE, raw(data), key=KEY)

    def test_wrong_host_refused(self):
        """Ensures a payload naming another host is ignored."""
        exc = self.assert_untrusted(payload.WRONG_HOST,
                                    raw(two_node_payload(host='compute2')))
        self.assertIn("'compute2'", exc.detail)

    def test_wrong_host_refused_even_when_signed(self):
        """Ensures a replayed signed payload of another host is ignored."""
        self.assert_untrusted(payload.WRONG_HOST,
                              raw(two_node_payload(host='compute2', key=KEY)),
                              key=KEY)

    def test_stale_payload_refused(self):
        """Ensures a payload older than max_data_age is ignored."""
        exc = self.assert_untrusted(payload.STALE,
                                    raw(two_node_payload(timestamp=NOW - 31)))
        self.assertIn('31 s old', exc.detail)

    def test_payload_at_the_age_limit_is_trusted(self):
        """Ensures a payload exactly max_data_age old is still used."""
        payload.verify(raw(two_node_payload(timestamp=NOW - 30)), 'compute1',
                       None, 30, NOW)

    def test_future_timestamp_refused(self):
        """Ensures clock skew beyond the allowance is refused."""
        self.assert_untrusted(payload.FUTURE,
                              raw(two_node_payload(timestamp=NOW + 60)))

    def test_small_clock_skew_tolerated(self):
        """Ensures a timestamp slightly in the future is tolerated."""
        payload.verify(raw(two_node_payload(timestamp=NOW + 2)), 'compute1',
                       None, 30, NOW)

    def test_too_large_refused(self):
        """Ensures a payload above 1 MiB is refused before parsing."""
        data = two_node_payload()
        data['padding'] = 'x' * payload.MAX_BYTES
        self.assert_untrusted(payload.TOO_LARGE, raw(data))

    def test_garbage_bytes_refused(self):
        """Ensures bytes that are not JSON are refused as such, and bytes
        that start as a msgpack record but are not one as those.
        """
        for value in (b'', b'{"schema": 1', b'\xff\xfe\x00', b'[' * 100000,
                      b'NaN', b'\x80\x04\x95pickled', b'\x89PNG\r\n'):
            self.assert_untrusted(payload.NOT_JSON, value)
        for value in (b'\x96garbage', b'\xdc\x00', b'\xc4\x20' + b'\x00' * 32,
                      b'\x91' * 100000):
            self.assert_untrusted(payload.NOT_MSGPACK, value)

    def test_pickled_object_is_not_json(self):
        """Ensures a non-bytes value from a store is refused."""
        self.assert_untrusted(payload.NOT_JSON, {'schema': 1})

    def test_schema_mismatch_refused(self):
        """Ensures a wrong schema, type or missing field is refused."""
        for change in ({'schema': 2}, {'schema': True}, {'schema': '1'},
                       {'nodes': []}, {'nodes': {}}, {'devices': {}},
                       {'timestamp': 'yesterday'}, {'timestamp': None}):
            data = two_node_payload()
            data.update(change)
            self.assert_untrusted(payload.BAD_SCHEMA, raw(data))
        for name, reason in (('schema', payload.BAD_SCHEMA),
                             ('host', payload.WRONG_HOST),
                             ('timestamp', payload.BAD_SCHEMA),
                             ('nodes', payload.BAD_SCHEMA)):
            data = two_node_payload()
            del data[name]
            self.assert_untrusted(reason, raw(data))
        self.assert_untrusted(payload.BAD_SCHEMA, b'[1, 2]')

    def test_node_field_types_checked(self):
        """Ensures node fields of the wrong type are refused."""
        for field, value in (('mem_free_mb', 2769.5), ('mem_free_mb', '1'),
                             ('mem_total_mb', None), ('mem_free_mb', True),
                             ('cpus', '0-5'), ('distances', None),
                             ('hugepages', []), ('id', '1')):
            data = two_node_payload()
            data['nodes'][1][field] = value
            self.assert_untrusted(payload.BAD_SCHEMA, raw(data))
        data = two_node_payload()
        data['nodes'][1]['cpus'] = [0.5]
        self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                          'compute1', None, 30, NOW, full=True)

    def test_scheduler_skips_elements_it_does_not_use(self):
        """Ensures cpus, distances, hugepages, devices elements are skipped.

        The scheduler uses the node ids and memory figures only; the full
        check (``full=True``) still refuses the same payload.
        """
        data = two_node_payload()
        data['nodes'][1].update({
            'cpus': [0.5, -3], 'distances': ['x'],
            'hugepages': {'2048': {'total': 1, 'free': 2}}})
        data['devices'] = [{'no': 'address'}] * 3
        trusted = payload.verify(raw(data), 'compute1', None, 30, NOW)
        self.assertEqual({0: 10501, 1: 2769}, trusted.free_mb)
        self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                          'compute1', None, 30, NOW, full=True)

    def test_implausible_numbers_refused(self):
        """Ensures free > total, negative and huge figures are refused."""
        for changes in ({'mem_free_mb': 70000, 'mem_available_mb': 70000},
                        {'mem_free_mb': 9000},
                        {'mem_free_mb': -1},
                        {'mem_total_mb': 2 ** 40, 'mem_available_mb': 2 ** 40,
                         'mem_free_mb': 2 ** 40},
                        {'id': -1}, {'id': 0}):
            data = two_node_payload()
            data['nodes'][1].update(changes)
            self.assert_untrusted(payload.INSANE, raw(data))

    def test_implausible_elements_refused_by_the_full_check(self):
        """Ensures the full check refuses bad hugepage counts and CPU ids."""
        for changes in ({'hugepages': {'2048': {'total': 1, 'free': 2}}},
                        {'cpus': [-3]}):
            data = two_node_payload()
            data['nodes'][1].update(changes)
            exc = self.assertRaises(payload.Untrusted, payload.verify,
                                    raw(data), 'compute1', None, 30, NOW,
                                    full=True)
            self.assertEqual(payload.INSANE, exc.code)

    def test_number_too_long_to_parse_refused(self):
        """Ensures a number too long to parse is refused."""
        text = raw(two_node_payload()).replace(b'"mem_free_mb":2769',
                                           b'"mem_free_mb":' + b'9' * 5000)
        self.assertRaises(payload.Untrusted, payload.verify, text,
                          'compute1', None, 30, NOW)

    def test_canonical_form_ignores_key_order(self):
        """Ensures the signed form does not depend on key order."""
        data = two_node_payload()
        shuffled = dict(reversed(list(copy.deepcopy(data).items())))
        self.assertEqual(payload.canonical(data), payload.canonical(shuffled))
        self.assertEqual(payload.signature(data, KEY),
                         payload.signature(shuffled, KEY))

    @PROPERTY
    @hypothesis.given(st.binary(max_size=2000))
    def test_random_bytes_never_raise_anything_else(self, value):
        """Ensures arbitrary stored bytes are refused with a reason."""
        try:
            payload.verify(value, 'compute1', KEY, 30, NOW)
        except payload.Untrusted as exc:
            self.assertTrue(exc.code)
        else:
            self.fail('random bytes were trusted: %r' % value)

    @PROPERTY
    @hypothesis.given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() |
        st.text(max_size=10),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            st.sampled_from(['id', 'nodes', 'mem_free_mb', 'host', 'x']),
            children, max_size=4), max_leaves=20),
        st.sampled_from(['nodes', 'devices', 'timestamp', 'host']))
    def test_mutated_payload_fields_never_raise_anything_else(self, value,
                                                              field):
        """Ensures any JSON in a top-level field is checked, never raises."""
        data = two_node_payload()
        data[field] = value
        try:
            text = json.dumps(data).encode()
        except ValueError:
            return
        try:
            payload.verify(text, 'compute1', None, 30, NOW)
        except payload.Untrusted:
            return
        # Only a value that is still a valid payload may pass.
        self.assertIn(field, ('devices', 'timestamp'))


class GuestFieldsTest(testcase.TestCase):
    """``guest_untouched_mb`` on every node together with ``guests_mb``."""

    def assert_untrusted(self, code, data):
        exc = self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                                'compute1', None, 30, NOW)
        self.assertEqual(code, exc.code, str(exc))
        return exc

    def test_guest_fields_are_trusted(self):
        """Ensures both fields come back in Trusted, signed or not."""
        for key in (None, KEY):
            trusted = payload.verify(raw(with_guests(key)), 'compute1', key,
                                     30, NOW)
            self.assertEqual({0: 6144, 1: 0}, trusted.untouched_mb)
            self.assertEqual(98304, trusted.guests_mb)
            self.assertEqual({0: 10501, 1: 2769}, trusted.free_mb)

    def test_payload_without_guest_fields_says_none(self):
        """Ensures an older agent's payload has no guest figures."""
        trusted = payload.verify(raw(two_node_payload()), 'compute1', None,
                                 30, NOW)
        self.assertIsNone(trusted.untouched_mb)
        self.assertIsNone(trusted.guests_mb)

    def test_one_field_without_the_other_is_refused(self):
        """Ensures the guest fields come together or not at all."""
        # guest_untouched_mb on every node, no guests_mb.
        data = two_node_payload(untouched=[6144, 0])
        exc = self.assert_untrusted(payload.BAD_SCHEMA, data)
        self.assertIn('guest_untouched_mb without guests_mb', exc.detail)
        # On one node only, no guests_mb.
        self.assert_untrusted(payload.BAD_SCHEMA,
                              two_node_payload(untouched=[6144]))
        # guests_mb, no node has guest_untouched_mb.
        exc = self.assert_untrusted(payload.BAD_SCHEMA,
                                    two_node_payload(guests_mb=98304))
        self.assertIn('guest_untouched_mb None', exc.detail)
        # guests_mb, one node lacks guest_untouched_mb.
        data = with_guests()
        del data['nodes'][1]['guest_untouched_mb']
        exc = self.assert_untrusted(payload.BAD_SCHEMA, data)
        self.assertIn('node 1: guest_untouched_mb', exc.detail)

    def test_guest_fields_of_the_wrong_type_are_refused(self):
        """Ensures non-integer guest figures are a schema mismatch."""
        for value in ('6144', 6144.5, True, [6144], {}):
            data = with_guests()
            data['nodes'][0]['guest_untouched_mb'] = value
            self.assert_untrusted(payload.BAD_SCHEMA, data)
            data = with_guests()
            data['guests_mb'] = value
            self.assert_untrusted(payload.BAD_SCHEMA, data)

    def test_implausible_guest_figures_are_refused(self):
        """Ensures negative or impossibly large guest figures are refused."""
        for value in (-1, payload.MAX_NODE_MB + 1):
            data = with_guests()
            data['nodes'][1]['guest_untouched_mb'] = value
            exc = self.assert_untrusted(payload.INSANE, data)
            self.assertIn('node 1: guest_untouched_mb', exc.detail)
        for value in (-1, payload.MAX_GUESTS_MB + 1):
            data = with_guests()
            data['guests_mb'] = value
            exc = self.assert_untrusted(payload.INSANE, data)
            self.assertIn('guests_mb', exc.detail)
        data = with_guests()
        data['nodes'][1]['guest_untouched_mb'] = payload.MAX_NODE_MB
        data['guests_mb'] = payload.MAX_GUESTS_MB
        payload.verify(raw(data), 'compute1', None, 30, NOW)

    def test_guest_figures_are_signed(self):
        """Ensures changing a guest figure breaks the signature."""
        data = with_guests(KEY)
        data['guests_mb'] = 0
        exc = self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                                'compute1', KEY, 30, NOW)
        self.assertEqual(payload.BAD_SIGNATURE, exc.code)


class MemoryRecordTest(testcase.TestCase):
    """The scheduler's part of a payload, stored next to it."""

    def test_record_keeps_only_ids_and_memory_figures(self):
        """Ensures the record is one compact row of figures per node."""
        record = payload.memory_record(with_guests())
        self.assertEqual({'schema', 'host', 'timestamp', 'guests_mb',
                          'mem'}, set(record))
        # id, mem_total_mb, mem_free_mb, mem_available_mb,
        # guest_untouched_mb
        self.assertEqual([[0, 64328, 10501, 14286, 6144],
                          [1, 64510, 2769, 7854, 0]], record['mem'])
        older = payload.memory_record(two_node_payload())
        self.assertNotIn('guests_mb', older)
        self.assertEqual([[0, 64328, 10501, 14286], [1, 64510, 2769, 7854]],
                         older['mem'])
        self.assertLess(len(raw(older)), 120)

    def test_record_leaves_the_payload_alone(self):
        """Ensures building the record does not change the payload."""
        data = with_guests(KEY)
        before = copy.deepcopy(data)
        payload.memory_record(data, KEY)
        self.assertEqual(before, data)

    def test_record_is_signed_on_its_own_and_verifies(self):
        """Ensures the record carries its own signature, which verifies."""
        full = with_guests(KEY)
        record = payload.memory_record(full, KEY)
        self.assertEqual(payload.signature(record, KEY), record['signature'])
        self.assertNotEqual(full['signature'], record['signature'])
        trusted = payload.verify(raw(record), 'compute1', KEY, 30, NOW)
        self.assertEqual(payload.verify(raw(full), 'compute1', KEY, 30, NOW),
                         trusted)
        payload.verify(raw(record), 'compute1', KEY, 30, NOW, full=True)
        # Without a key the record is unsigned, even from a signed payload.
        self.assertNotIn('signature', payload.memory_record(full))

    def test_stored_record_is_msgpack_and_verifies(self):
        """Ensures the agent's record is msgpack, smaller, and verifies as
        the payload it comes from.
        """
        for full in (with_guests(), two_node_payload()):
            stored = payload.encode_record(full)
            self.assertIn(stored[0], range(0x90, 0xa0))  # a msgpack array
            self.assertLess(len(stored), len(raw(payload.memory_record(full))))
            self.assertEqual(payload.verify(raw(full), 'compute1', None, 30,
                                            NOW),
                             payload.verify(stored, 'compute1', None, 30,
                                            NOW))
        exc = self.assertRaises(payload.Untrusted, payload.verify,
                                payload.encode_record(with_guests()),
                                'compute2', None, 30, NOW)
        self.assertEqual(payload.WRONG_HOST, exc.code)

    def test_record_is_an_array_of_its_members_in_order(self):
        """Ensures the array layout: members in order, nil for absent ones,
        later members ignored, anything shorter or other refused.
        """
        full = with_guests()
        full['physnets'] = {'physnet1': [1]}
        record = payload.memory_record(full)
        stored = payload.encode_record(full)
        self.assertEqual([record[name] for name in payload.RECORD_MEMBERS],
                         msgpack.unpackb(stored))
        older = msgpack.unpackb(payload.encode_record(two_node_payload()))
        self.assertEqual([None, None], [older[3], older[5]])
        trusted = payload.verify(stored, 'compute1', None, 30, NOW)
        self.assertEqual({'physnet1': frozenset([1])}, trusted.physnets)
        later = msgpack.packb(msgpack.unpackb(stored) + ['a later member'])
        self.assertEqual(trusted, payload.verify(later, 'compute1', None, 30,
                                                 NOW))
        # Extra members are signed as the others are.
        signed = b'\xc4\x20' + hmac.digest(KEY.encode(), later,
                                            'sha256') + later
        self.assertEqual(trusted, payload.verify(signed, 'compute1', KEY, 30,
                                                 NOW))
        signed_map = (b'\xc4\x20' + b'\x00' * 32 +
                      msgpack.packb(dict(record)))
        for value in (msgpack.packb(msgpack.unpackb(stored)[:5]),
                      msgpack.packb([]), signed_map):
            exc = self.assertRaises(payload.Untrusted, payload.verify, value,
                                    'compute1', None, 30, NOW)
            self.assertEqual(payload.BAD_SCHEMA, exc.code)
            self.assertIn('array of 6 members', exc.detail)

    def test_signed_record_is_checked_before_it_is_unpacked(self):
        """Ensures the HMAC first: right key, wrong key, none, tampering."""
        full = with_guests(KEY)
        stored = payload.encode_record(full, KEY)
        self.assertEqual(payload.verify(raw(full), 'compute1', KEY, 30, NOW),
                         payload.verify(stored, 'compute1', KEY, 30, NOW))
        # A scheduler without a key skips the signature.
        payload.verify(stored, 'compute1', None, 30, NOW)
        body = payload.encode_record(full)
        self.assertEqual(body, stored[-len(body):])
        forged = stored[:-1] + bytes([stored[-1] ^ 1])
        for value, key, code in (
                (stored, 'other-key', payload.BAD_SIGNATURE),
                (body, KEY, payload.UNSIGNED),
                (forged, KEY, payload.BAD_SIGNATURE),
                (payload.encode_record(full, 'other-key'), KEY,
                 payload.BAD_SIGNATURE)):
            exc = self.assertRaises(payload.Untrusted, payload.verify, value,
                                    'compute1', key, 30, NOW)
            self.assertEqual(code, exc.code)

    def test_bytes_names_in_a_record_are_refused(self):
        """Ensures msgpack's bytes map keys are not taken for names.

        JSON has only str keys; a msgpack map may have bytes keys too.
        """
        record = payload.memory_record(with_guests())
        record['physnets'] = {b'physnet1': [0]}
        exc = self.assertRaises(
            payload.Untrusted, payload.verify, packed(record), 'compute1',
            None, 30, NOW)
        self.assertEqual(payload.BAD_SCHEMA, exc.code)
        self.assertIn('physnet name', exc.detail)

    @PROPERTY
    @hypothesis.given(
        st.sampled_from([b'\x91', b'\x96', b'\xdc', b'\xdd', b'\xc4\x20',
                         b'\xc4\x20' + b'\x00' * 32 + b'\x96']),
        st.binary(max_size=500), st.sampled_from([None, KEY]))
    def test_bad_msgpack_is_refused_with_a_reason(self, head, tail, key):
        """Ensures bytes that look like a msgpack record are refused with a
        reason and raise nothing else.
        """
        try:
            payload.verify(head + tail, 'compute1', key, 30, NOW)
        except payload.Untrusted as exc:
            self.assertTrue(exc.code)
        else:
            self.fail('garbage was trusted: %r' % (head + tail))

    @PROPERTY
    @hypothesis.given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() |
        st.text(max_size=10) | st.binary(max_size=10),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            st.sampled_from(['id', 'mem', 'guests_mb', 'host', 'x']),
            children, max_size=4), max_leaves=20),
        st.sampled_from(['schema', 'mem', 'guests_mb', 'timestamp', 'host',
                         'physnets']))
    def test_mutated_record_fields_never_raise_anything_else(self, value,
                                                             field):
        """Ensures any msgpack value in a record field is checked."""
        record = payload.memory_record(with_guests())
        record[field] = value
        try:
            stored = packed(record)
        except OverflowError:  # an integer msgpack cannot hold
            return
        try:
            payload.verify(stored, 'compute1', None, 30, NOW)
        except payload.Untrusted as exc:
            self.assertTrue(exc.code)
            return
        if field == 'schema':
            self.assertIs(int, type(value))
            self.assertEqual(payload.SCHEMA, value)
        else:
            self.assertIn(field, ('timestamp', 'physnets'))

    def test_full_payload_signature_does_not_sign_the_record(self):
        """Ensures the full payload's signature fails on the record."""
        full = with_guests(KEY)
        record = payload.memory_record(full)
        record['signature'] = full['signature']
        exc = self.assertRaises(payload.Untrusted, payload.verify,
                                raw(record), 'compute1', KEY, 30, NOW)
        self.assertEqual(payload.BAD_SIGNATURE, exc.code)

    def test_payload_without_optional_lists_verifies(self):
        """Ensures cpus, distances, hugepages and devices may be absent."""
        data = two_node_payload()
        del data['devices']
        for node in data['nodes']:
            for name in ('cpus', 'distances', 'hugepages'):
                del node[name]
        for full in (False, True):
            trusted = payload.verify(raw(data), 'compute1', None, 30, NOW,
                                     full=full)
            self.assertEqual({0: 14286, 1: 7854}, trusted.available_mb)

    def test_full_check_still_checks_elements_when_present(self):
        """Ensures full=True checks the elements of the lists it finds."""
        for name, value in (('cpus', [0.5]), ('cpus', [-1]),
                            ('distances', ['x']),
                            ('hugepages', {'2048': {'total': 1, 'free': 2}}),
                            ('hugepages', {'2M': {'total': 1, 'free': 0}})):
            data = two_node_payload()
            del data['devices']
            data['nodes'][0][name] = value
            payload.verify(raw(data), 'compute1', None, 30, NOW)
            self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                              'compute1', None, 30, NOW, full=True)
        data = payload.memory_record(two_node_payload())
        data['devices'] = [{'numa_node': 0}]
        payload.verify(raw(data), 'compute1', None, 30, NOW)
        self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                          'compute1', None, 30, NOW, full=True)

    def test_record_rows_are_checked(self):
        """Ensures malformed or implausible rows are refused, with why."""
        for rows, code in (
                ([[0, 64328, 10501]], payload.BAD_SCHEMA),
                ([[0, 64328, 10501, 14286, 0]], payload.BAD_SCHEMA),
                ([{'id': 0}], payload.BAD_SCHEMA),
                ([[0, 64328, 20000, 14286]], payload.INSANE),
                ([[0, 64328, 1, 2], [0, 64328, 1, 2]], payload.INSANE),
                ([[0, 2 ** 40, 1, 2]], payload.INSANE),
                ([[0, 64328.0, 1, 2]], payload.BAD_SCHEMA),
                ([], payload.BAD_SCHEMA)):
            data = payload.memory_record(two_node_payload())
            data['mem'] = rows
            exc = self.assertRaises(payload.Untrusted, payload.verify,
                                    raw(data), 'compute1', None, 30, NOW)
            self.assertEqual(code, exc.code, rows)
        data = payload.memory_record(two_node_payload())
        data['nodes'] = two_node_payload()['nodes']
        exc = self.assertRaises(payload.Untrusted, payload.verify,
                                raw(data), 'compute1', None, 30, NOW)
        self.assertIn('both nodes and mem', str(exc))
        self.assertRaises(payload.Untrusted, payload.verify, raw(data),
                          'compute1', None, 30, NOW, full=True)

    @PROPERTY
    @hypothesis.given(st.lists(st.tuples(
        st.integers(0, payload.MAX_NODE_MB), st.integers(0, 100),
        st.integers(0, 100), st.integers(0, payload.MAX_NODE_MB)),
        min_size=1, max_size=8), st.integers(0, payload.MAX_GUESTS_MB),
        st.booleans())
    def test_record_verifies_as_its_payload(self, figures, guests, signed):
        """Ensures a record is trusted exactly as the payload it came from."""
        nodes = []
        for node_id, (total, free_pct, extra_pct, untouched) in enumerate(
                figures):
            free = total * free_pct // 100
            available = free + (total - free) * extra_pct // 100
            nodes.append({'id': node_id, 'cpus': [node_id],
                          'mem_total_mb': total, 'mem_free_mb': free,
                          'mem_available_mb': available,
                          'guest_untouched_mb': untouched,
                          'hugepages': {}, 'distances': [10]})
        key = KEY if signed else None
        full = payload.build('compute1', NOW, nodes, key=key,
                             guests_mb=guests)
        record = payload.memory_record(full, key)
        self.assertEqual(
            payload.verify(raw(full), 'compute1', key, 30, NOW, full=True),
            payload.verify(raw(record), 'compute1', key, 30, NOW, full=True))

    @PROPERTY
    @hypothesis.given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() |
            st.text(max_size=10),
            lambda children: st.lists(children, max_size=4) |
            st.dictionaries(st.sampled_from(
                ['id', 'mem_free_mb', 'guest_untouched_mb', 'x']),
                children, max_size=4), max_leaves=20),
        st.sampled_from(['guests_mb', 'guest_untouched_mb', 'mem_free_mb',
                         'id', 'del guests_mb', 'del guest_untouched_mb']),
        st.integers(0, 1), st.booleans())
    def test_mutated_guest_fields_never_raise_anything_else(
            self, value, field, node_id, as_record):
        """Ensures any JSON in a guest field is checked, never raises.

        A payload that passes still has the guest fields together, with
        whole, plausible numbers.
        """
        data = with_guests()
        if as_record:
            data = payload.memory_record(data)
        if field == 'guests_mb':
            data['guests_mb'] = value
        elif field == 'del guests_mb':
            del data['guests_mb']
        elif as_record and field == 'del guest_untouched_mb':
            del data['mem'][node_id][4]
        elif as_record:
            data['mem'][node_id][4] = value
        elif field == 'del guest_untouched_mb':
            del data['nodes'][node_id]['guest_untouched_mb']
        else:
            data['nodes'][node_id][field] = value
        try:
            text = json.dumps(data).encode()
        except ValueError:
            return
        try:
            trusted = payload.verify(text, 'compute1', None, 30, NOW)
        except payload.Untrusted as exc:
            self.assertTrue(exc.code)
            return
        if trusted.guests_mb is None:
            self.assertIsNone(trusted.untouched_mb)
        else:
            self.assertIs(int, type(trusted.guests_mb))
            self.assertEqual(set(trusted.free_mb), set(trusted.untouched_mb))
            for mb in trusted.untouched_mb.values():
                self.assertIs(int, type(mb))
                self.assertTrue(0 <= mb <= payload.MAX_NODE_MB)


def with_physnets(key=None, physnets=None):
    """A payload whose agent has [numa_guard_agent] physnet_interfaces."""
    data = two_node_payload()
    return payload.build(
        'compute1', NOW - 5, data['nodes'], data['devices'], key=key,
        physnets={'physnet1': [1], 'physnet2': [1, 0]}
        if physnets is None else physnets)


@ddt.ddt
class PhysnetsTest(testcase.TestCase):
    """The optional physnets field: physnet -> nodes of its NICs."""

    def test_physnets_are_trusted_as_node_sets(self):
        """Ensures that a payload's physnets come out as frozensets."""
        trusted = payload.verify(raw(with_physnets()), 'compute1', None, 30,
                                 NOW, full=True)
        self.assertEqual({'physnet1': frozenset([1]),
                          'physnet2': frozenset([0, 1])}, trusted.physnets)
        self.assertEqual([0, 1], with_physnets()['physnets']['physnet2'])

    def test_payload_without_physnets_says_none(self):
        """Ensures that an agent without the option gives no physnets."""
        data = two_node_payload()
        self.assertNotIn('physnets', data)
        trusted = payload.verify(raw(data), 'compute1', None, 30, NOW)
        self.assertIsNone(trusted.physnets)

    def test_record_keeps_the_physnets_and_signs_them(self):
        """Ensures that the memory record carries the physnets, signed."""
        host_key = payload.host_key(KEY, 'compute1')
        record = payload.memory_record(with_physnets(), host_key)
        self.assertEqual({'physnet1': [1], 'physnet2': [0, 1]},
                         record['physnets'])
        trusted = payload.verify(raw(record), 'compute1', host_key, 30, NOW,
                                 max_bytes=payload.MAX_RECORD_BYTES)
        self.assertEqual(frozenset([1]), trusted.physnets['physnet1'])
        record['physnets']['physnet1'] = [0]
        exc = self.assertRaises(payload.Untrusted, payload.verify,
                                raw(record), 'compute1', host_key, 30, NOW)
        self.assertEqual(payload.BAD_SIGNATURE, exc.code)

    def test_empty_node_list_is_a_physnet_without_nodes(self):
        """Ensures that NICs whose firmware gives no node are kept."""
        trusted = payload.verify(raw(with_physnets(physnets={'p': []})),
                                 'compute1', None, 30, NOW)
        self.assertEqual({'p': frozenset()}, trusted.physnets)

    @ddt.named_data(
        ('not-an-object', ['physnet1'], payload.BAD_SCHEMA),
        ('nodes-not-a-list', {'physnet1': 1}, payload.BAD_SCHEMA),
        ('node-not-an-integer', {'physnet1': ['1']}, payload.BAD_SCHEMA),
        ('node-a-float', {'physnet1': [1.0]}, payload.BAD_SCHEMA),
        ('node-a-boolean', {'physnet1': [True]}, payload.BAD_SCHEMA),
        ('empty-name', {'': [0]}, payload.BAD_SCHEMA),
        ('name-too-long', {'p' * 65: [0]}, payload.BAD_SCHEMA),
        ('negative-node', {'physnet1': [-1]}, payload.INSANE),
        ('node-beyond-the-limit', {'physnet1': [payload.MAX_NODES]},
         payload.INSANE),
        ('node-listed-twice', {'physnet1': [1, 1]}, payload.INSANE),
        ('too-many-physnets',
         {'p%d' % i: [0] for i in range(payload.MAX_PHYSNETS + 1)},
         payload.INSANE),
    )
    def test_bad_physnets_are_refused(self, physnets, code):
        """Ensures that every malformed physnets field is refused."""
        data = two_node_payload()
        data['physnets'] = physnets
        for value in (data, payload.memory_record(data)):
            exc = self.assertRaises(payload.Untrusted, payload.verify,
                                    raw(value), 'compute1', None, 30, NOW)
            self.assertEqual(code, exc.code)
            self.assertIn('physnet', str(exc))

    @PROPERTY
    @hypothesis.given(st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() |
        st.text(max_size=70),
        lambda children: st.lists(children, max_size=4) |
        st.dictionaries(st.text(max_size=70), children, max_size=4),
        max_leaves=20))
    def test_any_json_physnets_never_raise_anything_else(self, value):
        """Ensures any JSON in physnets is checked and never raises.

        What passes maps names to sets of node ids in range.
        """
        data = two_node_payload()
        data['physnets'] = value
        try:
            text = json.dumps(data).encode()
        except ValueError:
            return
        try:
            trusted = payload.verify(text, 'compute1', None, 30, NOW)
        except payload.Untrusted as exc:
            self.assertTrue(exc.code)
            return
        for name, nodes in trusted.physnets.items():
            self.assertTrue(0 < len(name) <= payload.MAX_PHYSNET_NAME)
            self.assertIsInstance(nodes, frozenset)
            self.assertTrue(all(type(n) is int and 0 <= n < payload.MAX_NODES
                                for n in nodes))
