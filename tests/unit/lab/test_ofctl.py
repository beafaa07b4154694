from tspulab.lab.ofctl import parse_dump_flows, parse_dump_ports

FLOWS = """OFPST_FLOW reply (OF1.3) (xid=0x2):
 cookie=0x73700001, duration=5.728s, table=0, n_packets=1, n_bytes=98, priority=100,ip,nw_dst=18.196.0.0/16 actions=drop
 cookie=0x737000ff, duration=5.728s, table=0, n_packets=29, n_bytes=2434, priority=0 actions=goto_table:1
 cookie=0x73700002, duration=5.728s, table=1, n_packets=20, n_bytes=1680, priority=10,in_port=1 actions=output:2
"""

PORTS = """OFPST_PORT reply (OF1.3) (xid=0x2): 3 ports
  port  1: rx pkts=5864, bytes=436239, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=23219, bytes=35135072, drop=0, errs=0, coll=0
           duration=44.123s
  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
"""


def test_parse_dump_flows() -> None:
    flows = parse_dump_flows(FLOWS)
    assert len(flows) == 3
    assert flows[0].cookie == 0x73700001 and flows[0].n_packets == 1
    assert flows[0].match == "priority=100,ip,nw_dst=18.196.0.0/16"
    assert flows[0].actions == "drop"
    assert flows[2].table == 1 and flows[2].actions == "output:2"


def test_parse_dump_ports() -> None:
    ports = parse_dump_ports(PORTS)
    assert ports["1"] == {"rx_packets": 5864, "rx_bytes": 436239, "tx_packets": 23219,
                          "tx_bytes": 35135072}  # fmt: skip
    assert ports["LOCAL"]["tx_bytes"] == 0
