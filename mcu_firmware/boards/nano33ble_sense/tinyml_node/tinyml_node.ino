// tinyml-gateway reference node for the Arduino Nano 33 BLE Sense Rev2 (nRF52840).
//
// The portable core (mcu_firmware/node) with this board's HAL: the BMI270 IMU as
// the sensor, the TFLM backend running the shipped BasicMotions model, USB serial
// and the protocol's BLE GATT service as links, the last flash sector for the boot
// counter and settings, the nRF52 watchdog. Build: mcu_firmware/README.md
// ("Board port"); run prepare.sh first. Not built in this repository's CI.

#include <Arduino.h>
#include <ArduinoBLE.h>
#include <Arduino_BMI270_BMM150.h>
#include <FlashIAP.h>
#include <TensorFlowLite.h>
#include <mbed.h>

extern "C" {
#include "src/tgw/basicmotions_model.h"
#include "src/tgw/tgw_link.h"
}
#include "src/tgw/basicmotions_node.h"
#include "src/tgw/tgw_tflm.h"

namespace {

constexpr uint32_t kSerialBaud = 115200;
constexpr uint32_t kWatchdogMs = 8000;
// IMU units (g, degrees/s) to the units of the BasicMotions recordings the model
// was trained on. Calibrate against a recording of your own watch or board: a
// model fed other units answers confidently and wrongly.
constexpr float kAccToModel = 9.80665f;
constexpr float kGyroToModel = 0.0174533f;
// The arena TFLM measured on x86_64, plus room for a 32-bit target's different
// bookkeeping; the boot LOG line reports what the interpreter really used.
constexpr size_t kArenaBytes = ((BASICMOTIONS_ARENA_BYTES + 15u) / 16u) * 16u + 1024u;
alignas(16) uint8_t arena[kArenaBytes];

tgw_node_t node;
tgw_serial_link_t serial_link;
tgw_ble_link_t ble_link;
tgw_tflm_t tflm;
mbed::FlashIAP flash;

BLEService service(TGW_BLE_SERVICE_UUID);
BLECharacteristic event_char(TGW_BLE_EVENT_CHAR_UUID, BLENotify, TGW_BLE_MAX_ATT_MTU - 3);
BLECharacteristic command_char(TGW_BLE_COMMAND_CHAR_UUID, BLEWrite, TGW_BLE_MAX_ATT_MTU - 3);
BLECharacteristic info_char(TGW_BLE_INFO_CHAR_UUID, BLERead, 512);

// ---- HAL ---------------------------------------------------------------------
uint32_t hal_millis(void *) { return millis(); }
uint32_t hal_micros(void *) { return micros(); }

bool hal_read_sample(void *, float *axes, uint8_t n_axes) {
    if (n_axes != 6 || !IMU.accelerationAvailable() || !IMU.gyroscopeAvailable()) {
        return false;
    }
    float ax, ay, az, gx, gy, gz;
    if (!IMU.readAcceleration(ax, ay, az) || !IMU.readGyroscope(gx, gy, gz)) {
        return false;
    }
    axes[0] = ax * kAccToModel;
    axes[1] = ay * kAccToModel;
    axes[2] = az * kAccToModel;
    axes[3] = gx * kGyroToModel;
    axes[4] = gy * kGyroToModel;
    axes[5] = gz * kGyroToModel;
    return true;
}

bool hal_set_sample_rate(void *, uint32_t hz) {
    // the core picks samples at this rate from the IMU's own output data rate
    return hz <= static_cast<uint32_t>(IMU.accelerationSampleRate());
}

bool serial_write(void *, const uint8_t *data, size_t len) {
    return Serial.write(data, len) == len;
}

bool ble_notify(void *, const uint8_t *fragment, size_t len) {
    return event_char.writeValue(fragment, static_cast<int>(len)) == 1;
}

// BLE when a gateway is subscribed, USB serial otherwise; with neither, EVENTs
// wait in the ring.
bool hal_send(void *, const uint8_t *msg, size_t len) {
    if (BLE.connected() && event_char.subscribed()) {
        return tgw_ble_link_send(&ble_link, msg, len);
    }
    if (Serial) {
        return tgw_serial_link_send(&serial_link, msg, len);
    }
    return false;
}

// The last flash sector holds the boot counter and settings; the core checks the
// record's magic and CRC, so erased flash (0xFF) reads as a first boot.
uint32_t storage_address() {
    uint32_t end = flash.get_flash_start() + flash.get_flash_size();
    return end - flash.get_sector_size(end - 1u);
}

bool hal_load(void *, tgw_persist_t *out) {
    return flash.read(out, storage_address(), sizeof *out) == 0;
}

bool hal_save(void *, const tgw_persist_t *in) {
    alignas(4) uint8_t page[(sizeof(tgw_persist_t) + 7u) & ~7u];
    uint32_t addr = storage_address();
    std::memset(page, 0xFF, sizeof page);
    std::memcpy(page, in, sizeof *in);
    return flash.erase(addr, flash.get_sector_size(addr)) == 0 &&
           flash.program(page, addr, sizeof page) == 0;
}

int16_t hal_temperature_cdeg(void *) {
    // the nRF52840's die sensor, in 0.25 degC steps
    NRF_TEMP->TASKS_START = 1;
    while (NRF_TEMP->EVENTS_DATARDY == 0) {
    }
    NRF_TEMP->EVENTS_DATARDY = 0;
    int32_t quarter_degrees = static_cast<int32_t>(NRF_TEMP->TEMP);
    NRF_TEMP->TASKS_STOP = 1;
    return static_cast<int16_t>(quarter_degrees * 25);
}

void hal_watchdog_kick(void *) { mbed::Watchdog::get_instance().kick(); }

void hal_sleep_until(void *, uint32_t deadline_ms) {
    // short naps: BLE.poll() and the USB serial need the loop every few ms
    int32_t left = static_cast<int32_t>(deadline_ms - millis());
    if (left > 0) {
        delay(left < 5 ? static_cast<unsigned long>(left) : 5ul);
    }
}

void hal_reboot(void *) {
    Serial.flush();
    NVIC_SystemReset();
}

// ---- BLE events (called from BLE.poll(), in the loop's context) ----------------
void on_subscribed(BLEDevice, BLECharacteristic) { tgw_node_link_up(&node); }

void on_command(BLEDevice, BLECharacteristic c) {
    tgw_ble_link_write(&ble_link, &node, c.value(), static_cast<size_t>(c.valueLength()));
}

void on_connected(BLEDevice) {
    uint8_t info[TGW_NODE_SLOT_SIZE];
    size_t len;
    tgw_ble_link_set_mtu(&ble_link, TGW_BLE_MIN_ATT_MTU);
    if (tgw_node_encode_info(&node, info, sizeof info, &len)) {
        info_char.writeValue(info, static_cast<int>(len));
    }
}

void halt(const char *why) {
    // no boot id of our own, or no model: say why on USB, and let the watchdog retry
    for (;;) {
        Serial.println(why);
        delay(1000);
    }
}

}  // namespace

void setup() {
    Serial.begin(kSerialBaud);
    flash.init();
    mbed::Watchdog::get_instance().start(kWatchdogMs);
    if (!IMU.begin()) {
        halt("tinyml-node: IMU not found");
    }
    if (!tgw_tflm_init(&tflm, basicmotions_model, arena, sizeof arena,
                       BASICMOTIONS_WINDOW_SAMPLES * BASICMOTIONS_WINDOW_AXES,
                       BASICMOTIONS_LABEL_COUNT)) {
        halt(tflm.error);
    }
    tgw_serial_link_init(&serial_link, serial_write, nullptr);
    tgw_ble_link_init(&ble_link, ble_notify, nullptr);

    static tgw_model_t model;
    basicmotions_node_model(&model, &tflm, tgw_tflm_invoke);

    tgw_hal_t hal = {};
    hal.millis = hal_millis;
    hal.micros = hal_micros;
    hal.read_sample = hal_read_sample;
    hal.set_sample_rate = hal_set_sample_rate;
    hal.send = hal_send;
    hal.load = hal_load;
    hal.save = hal_save;
    hal.temperature_cdeg = hal_temperature_cdeg;  // USB powered: no battery to report
    hal.watchdog_kick = hal_watchdog_kick;
    hal.sleep_until = hal_sleep_until;
    hal.reboot = hal_reboot;

    tgw_node_config_t cfg = {};
    // the factory id, unique per chip (docs/protocol.md section 2)
    cfg.node_id = (static_cast<uint64_t>(NRF_FICR->DEVICEID[1]) << 32) | NRF_FICR->DEVICEID[0];
    cfg.firmware_version = "tinyml-node 0.1.0 nano33ble-sense";
    cfg.hop_samples = 50;  // a window every 5 s at 10 Hz, half of it new
    cfg.attach_window = true;
    cfg.send_scores = true;
    cfg.retx_timeout_ms = 2000;
    cfg.max_sample_rate_hz = 100;
    cfg.default_sample_rate_hz = 10;  // BasicMotions' rate
    cfg.default_heartbeat_period_s = 60;
    cfg.decision.threshold = 52428;  // 0.8
    cfg.decision.debounce = 2;
    cfg.decision.cooldown_ms = 10000;
    cfg.decision.label_mask = 0x3;  // badminton and running raise events
    if (!tgw_node_start(&node, &hal, &model, &cfg)) {
        halt("tinyml-node: could not store a new boot id");
    }

    if (BLE.begin()) {
        BLE.setLocalName("tinyml-node");
        BLE.setAdvertisedService(service);
        service.addCharacteristic(event_char);
        service.addCharacteristic(command_char);
        service.addCharacteristic(info_char);
        BLE.addService(service);
        event_char.setEventHandler(BLESubscribed, on_subscribed);
        command_char.setEventHandler(BLEWritten, on_command);
        BLE.setEventHandler(BLEConnected, on_connected);
        on_connected(BLEDevice());  // the info characteristic is readable from the start
        BLE.advertise();
    } else {
        tgw_node_log(&node, TGW_LOG_WARNING, "BLE did not start: serial only");
    }
    char line[64];
    snprintf(line, sizeof line, "tensor arena: %u of %u bytes used",
             static_cast<unsigned>(tflm.arena_used), static_cast<unsigned>(sizeof arena));
    tgw_node_log(&node, TGW_LOG_INFO, line);
}

void loop() {
    static uint8_t rx[64];
    size_t n = 0;
    while (n < sizeof rx && Serial.available() > 0) {
        rx[n++] = static_cast<uint8_t>(Serial.read());
    }
    if (n > 0) {
        tgw_serial_link_feed(&serial_link, &node, rx, n);
    }
    BLE.poll();
    tgw_node_poll(&node);
    tgw_node_sleep(&node);
}
