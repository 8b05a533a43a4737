from tests.gateway_proc import GatewayProcess, Publisher, logger_messages, vm_by_device
from tests.services import poll


def test_smoke(mosquitto, victoria, tmp_path):
    gw = GatewayProcess(tmp_path, mosquitto.url, victoria.url)
    gw.start()
    msgs, expected = logger_messages(200, batch=1)
    pub = Publisher(mosquitto.port)
    pub.publish_all(msgs)
    poll(lambda: vm_by_device(victoria) == expected, 30, what="all readings in VM")
    assert gw.stop() == 0
