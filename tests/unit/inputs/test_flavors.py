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

"""Tests of the simulator's flavors: --flavor specs and flavor files."""

import json
import os

import fixtures
import hypothesis
from hypothesis import strategies as st

from nova_numa_guard.inputs import flavors
from nova_numa_guard.inputs import InputError
from tests import examples
from tests import testcase

Flavor = flavors.Flavor
Port = flavors.Port

GOOD_SPECS = [
    ('vcpus=4,ram=70000', Flavor('vcpus=4,ram=70000', 4, 70000, {}, ())),
    (' name=x1.70g , vcpus=4,ram=70000,hw:numa_nodes=2',
     Flavor('x1.70g', 4, 70000, {'hw:numa_nodes': '2'}, ())),
    ('vcpus=8,ram=8192,pci_passthrough:alias=a:1,b:2,hw:cpu_sockets=2',
     Flavor('vcpus=8,ram=8192,pci_passthrough:alias=a:1,b:2,'
            'hw:cpu_sockets=2', 8, 8192,
            {'pci_passthrough:alias': 'a:1,b:2', 'hw:cpu_sockets': '2'}, ())),
    ('name=nfv,vcpus=4,ram=8192,port=physnet2:direct,port=physnet1,'
     'port=tunnel',
     Flavor('nfv', 4, 8192, {}, (Port('physnet2', True),
                                 Port('physnet1', False),
                                 Port(None, False)))),
]

BAD_SPECS = [
    ('', 'empty flavor spec'),
    ('vcpus=4', 'ram: missing'),
    ('ram=4096', 'vcpus: missing'),
    ('vcpus=4,ram=4g', "ram: expected a whole number, got '4g'"),
    ('vcpus=0,ram=4096', 'vcpus: 0 is outside 1..4096'),
    ('vcpus=4,ram=4096,vcpus=2', 'vcpus: given twice'),
    ('vcpus=4,ram=4096,disk=20', "unknown field 'disk' (expected vcpus, "
     "ram, name, port or an extra spec such as hw:numa_nodes)"),
    ('vcpus=4,ram=4096,hw:numa_nodes=', 'hw:numa_nodes: empty value'),
    ('vcpus=4,ram=4096,hw:numa_nodes=1,hw:numa_nodes=2',
     'hw:numa_nodes: given twice'),
    ('nonsense,vcpus=4,ram=4096', "'nonsense': expected key=value"),
    ('vcpus=4,ram=4096,port=physnet2:macvtap',
     'port=physnet2:macvtap: expected PHYSNET, PHYSNET:direct or tunnel'),
    ('vcpus=4,ram=4096,port=tunnel:direct',
     'port=tunnel:direct: an SR-IOV port needs a physnet'),
    ('vcpus=4,ram=4096,port=a b', "port=a b: 'a b' is not a physnet name"),
    # Unprintable characters are escaped: the message stays on one line.
    ('vcpus=4,ram=4096,0\n0=', '0\\n0: empty value'),
    ('vcpus=4,ram=4096,hw:a\x00=1', "unknown field 'hw:a\\x00'"),
    ('vcpus=4,ram=4096,port=a\nb', "port=a\\nb: 'a\\nb' is not a physnet"),
]


class FlavorSpecTest(testcase.TestCase):

    def test_good_specs(self):
        """Ensures each good spec gives its flavor."""
        for text, expected in GOOD_SPECS:
            self.assertEqual(expected, flavors.parse_spec(text), text)

    def test_bad_specs_name_the_option_and_field(self):
        """Ensures each bad spec gives a one-line error naming --flavor."""
        for text, expected in BAD_SPECS:
            e = self.assertRaises(InputError, flavors.parse_spec, text)
            self.assertTrue(str(e).startswith('--flavor: ' + expected),
                            '%s\n%s' % (expected, e))

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(st.text(max_size=60))
    def test_any_text_is_a_flavor_or_one_line(self, text):
        """Ensures any text gives a flavor or a one-line InputError."""
        try:
            flavor = flavors.parse_spec(text)
        except InputError as e:
            self.assertNotIn('\n', str(e).strip('\n'))
            return
        self.assertGreaterEqual(flavor.vcpus, 1)
        self.assertGreaterEqual(flavor.ram, 1)


class FlavorFileTest(testcase.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, data):
        path = os.path.join(self.tmp, 'flavors.json')
        with open(path, 'w') as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def test_list_output(self):
        """Ensures openstack flavor list --long output gives its flavors."""
        loaded = flavors.load(examples.FLAVORS)
        self.assertEqual(['m1.large', 'r1.2xlarge', 'r1.2xlarge.vnuma',
                          'x1.large', 'nfv.medium'],
                         [f.name for f in loaded])
        self.assertEqual(Flavor('r1.2xlarge.vnuma', 8, 65536,
                                {'hw:numa_nodes': '2',
                                 'hw:cpu_sockets': '2'}, ()), loaded[2])

    def test_show_output(self):
        """Ensures openstack flavor show output gives one flavor."""
        path = self.write({
            'OS-FLV-DISABLED:disabled': False,
            'OS-FLV-EXT-DATA:ephemeral': 0, 'access_project_ids': None,
            'description': None, 'disk': 20, 'id': '7', 'name': 'x1.large',
            'os-flavor-access:is_public': True,
            'properties': "hw:numa_nodes='2', hw:cpu_sockets='2'",
            'ram': 100000, 'rxtx_factor': 1.0, 'swap': 0, 'vcpus': 16})
        self.assertEqual([Flavor('x1.large', 16, 100000,
                                 {'hw:numa_nodes': '2',
                                  'hw:cpu_sockets': '2'}, ())],
                         flavors.load(path))

    def test_bad_files_name_file_and_flavor(self):
        """Ensures bad flavor files give one line naming the flavor."""
        good = {'Name': 'a', 'VCPUs': 1, 'RAM': 512}
        for data, expected in [
                ('[', 'not JSON: '),
                ([], 'expected openstack flavor list --long -f json or '
                     'openstack flavor show -f json output'),
                ([1], 'flavor 0: expected a JSON object'),
                ([dict(good, Colour='red')], "flavor 0: unknown field "
                 "'Colour'"),
                ([{'VCPUs': 1, 'RAM': 512}], 'flavor 0: no Name or ID'),
                ([dict(good, RAM='512')], "flavor a: RAM: expected a whole "
                 "number, got '512'"),
                ([dict(good, VCPUs=True)], 'flavor a: VCPUs: expected a '
                 'whole number, got True'),
                ([dict(good, Properties=[1])], 'flavor a: Properties must be '
                 'an object or a string'),
                ({'name': 'b', 'vcpus': 1}, 'flavor b: ram: expected a whole '
                 'number, got None')]:
            path = self.write(data)
            e = self.assertRaises(InputError, flavors.load, path)
            self.assertTrue(str(e).startswith(path + ': ' + expected),
                            '%s\n%s' % (expected, e))
            self.assertNotIn('\n', str(e))

    def test_missing_file(self):
        """Ensures a missing flavor file is one line naming it."""
        path = os.path.join(self.tmp, 'none.json')
        e = self.assertRaises(InputError, flavors.load, path)
        self.assertEqual(path + ': cannot read: No such file or directory',
                         str(e))
