package dev.streamlet.kdiff;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;

/**
 * Runs named topologies ({@link Topologies}) through TopologyTestDriver on JSON-line records.
 *
 * <p>stdin, one JSON object a line:
 * <pre>
 *   {"case": "ID", "topology": "NAME"}                            starts a case (a fresh driver)
 *   {"topic": T, "key": K, "value": V, "timestamp": MS}           an input record (value null = tombstone)
 *   {"end": "ID"}                                                 runs nothing more: closes the driver
 * </pre>
 * stdout: for each case, every output record of every output topic, in the order the driver produced
 * them within each topic ({"topic","key","value","timestamp"}), read after each input record, then
 * {"done": "ID"}. A failure prints {"error": "...", "case": "ID"} and the process goes on with the
 * next case. With a topology NAME as the only argument, stdin is one case of that topology.
 */
public final class Main {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Main() {}

  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    Case current = args.length == 1 ? Case.start("main", args[0]) : null;
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode msg = JSON.readTree(line);
      try {
        if (msg.has("case")) {
          if (current != null) {
            current.finish(out);
          }
          current = Case.start(msg.get("case").asText(), msg.get("topology").asText());
        } else if (msg.has("end")) {
          if (current != null) {
            current.finish(out);
            current = null;
          }
        } else if (current != null && !current.failed) {
          current.pipe(msg, out);
        }
      } catch (RuntimeException e) {
        if (current != null) {
          current.fail(e, out);
        } else {
          error(msg.path("case").asText(""), e, out);
        }
      }
      out.flush();
    }
    if (current != null) {
      current.finish(out);
    }
    out.flush();
  }

  static void error(String id, Throwable e, PrintStream out) {
    ObjectNode err = JSON.createObjectNode();
    err.put("case", id);
    err.put("error", e.toString() + (e.getCause() != null ? " caused by " + e.getCause() : ""));
    out.println(err);
    ObjectNode done = JSON.createObjectNode();
    done.put("done", id);
    out.println(done);
  }

  /** One topology run on one TopologyTestDriver. */
  private static final class Case {
    final String id;
    final TopologyTestDriver driver;
    final List<String> topics;
    final List<TestOutputTopic<String, JsonNode>> outputs = new ArrayList<>();
    boolean failed;

    private Case(String id, Topologies.Definition def) {
      this.id = id;
      this.topics = def.outputs();
      Properties props = new Properties();
      props.put(StreamsConfig.APPLICATION_ID_CONFIG, "kdiff-" + def.name());
      props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
      props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
      // emit-final windows are emitted as soon as stream time closes them, as streamlet does: Kafka
      // Streams otherwise checks at most once a second of wall-clock time, so which records see a
      // window closed would depend on how fast the test runs
      props.put("__emit.interval.ms.kstreams.windowed.aggregation__", 0L);
      props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
      props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, JsonSerde.class);
      this.driver = new TopologyTestDriver(def.topology(), props);
      for (String topic : def.outputs()) {
        outputs.add(driver.createOutputTopic(topic, Serdes.String().deserializer(),
            JsonSerde.INSTANCE.deserializer()));
      }
    }

    static Case start(String id, String topology) {
      return new Case(id, Topologies.get(topology));
    }

    void pipe(JsonNode msg, PrintStream out) {
      String topic = msg.get("topic").asText();
      JsonNode key = msg.get("key");
      JsonNode value = msg.get("value");
      TestInputTopic<String, JsonNode> input = driver.createInputTopic(topic,
          Serdes.String().serializer(), JsonSerde.INSTANCE.serializer());
      input.pipeInput(key == null || key.isNull() ? null : key.asText(),
          value == null || value.isNull() ? null : value, msg.get("timestamp").asLong());
      drain(out);
    }

    void drain(PrintStream out) {
      for (int i = 0; i < outputs.size(); i++) {
        for (TestRecord<String, JsonNode> r : outputs.get(i).readRecordsToList()) {
          ObjectNode line = JSON.createObjectNode();
          line.put("topic", topics.get(i));
          line.put("key", r.key());
          line.set("value", r.value());
          line.put("timestamp", r.timestamp());
          out.println(line);
        }
      }
    }

    void fail(RuntimeException e, PrintStream out) {
      failed = true;
      ObjectNode err = JSON.createObjectNode();
      err.put("case", id);
      err.put("error", e.toString() + (e.getCause() != null ? " caused by " + e.getCause() : ""));
      out.println(err);
    }

    void finish(PrintStream out) {
      try {
        driver.close();
      } finally {
        ObjectNode done = JSON.createObjectNode();
        done.put("done", id);
        out.println(done);
      }
    }
  }
}
