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

# Documentation build configuration (tools/tox.sh -e docs).

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]

# oslo_config.sphinxconfiggen: the sample file of tox -e genconfig, written
# to _static/nova-numa-guard.conf.sample at every build.
config_generator_config_file = (
    '../../etc/oslo-config-generator/nova-numa-guard.conf')
sample_config_basename = '_static/nova-numa-guard'

openstackdocs_repo_name = 'openstack/nova-numa-guard'
openstackdocs_bug_project = 'nova-numa-guard'
openstackdocs_auto_name = False

source_suffix = '.rst'
master_doc = 'index'
project = 'nova-numa-guard'
copyright = '2026, nova-numa-guard developers'
exclude_patterns = []
pygments_style = 'native'
html_theme = 'openstackdocs'
html_static_path = ['_static']
