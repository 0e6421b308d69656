package dev.streamlet.kdiff;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.kstream.Materialized;

/**
 * "named-aggregators": streamlet's sl.agg columns written as one Kafka Streams aggregate, by their
 * documented meaning (DESIGN §1: ksqlDB names and null rules). The by-offset ones are compared on one
 * partition with no redelivery, where the record with the highest offset is the latest one to arrive.
 */
final class NamedAggregators {
  private static final JsonNodeFactory F = JsonNodeFactory.instance;

  private NamedAggregators() {}

  static void build(StreamsBuilder b) {
    Topologies.in(b).groupByKey()
        .aggregate(NamedAggregators::init, (k, v, agg) -> add(v, (ObjectNode) agg),
            Materialized.as("summary"))
        .toStream().to("summary-out");
  }

  private static JsonNode init() {
    ObjectNode agg = F.objectNode().put("n", 0).put("total", 0);
    agg.putNull("low").putNull("high").putNull("first").putNull("latest").putNull("earliest");
    agg.set("users", F.arrayNode());
    agg.set("tags", F.arrayNode());
    agg.set("top", F.arrayNode());
    return agg;
  }

  private static JsonNode add(JsonNode v, ObjectNode old) {
    ObjectNode agg = old.deepCopy();
    long amount = v.get("amount").asLong();
    JsonNode user = v.get("user");
    agg.put("n", agg.get("n").asLong() + 1);
    agg.put("total", agg.get("total").asLong() + amount);
    if (agg.get("low").isNull() || amount < agg.get("low").asLong()) {
      agg.put("low", amount);
    }
    if (agg.get("high").isNull() || amount > agg.get("high").asLong()) {
      agg.put("high", amount);
    }
    if (agg.get("first").isNull()) {
      agg.set("first", user); // Kafka Streams' agg == null ? value : agg
    }
    if (!user.isNull()) {
      agg.set("latest", user); // latest_by_offset: ignore_nulls
    }
    if (agg.get("earliest").isNull()) {
      agg.set("earliest", user); // earliest_by_offset: ignore_nulls, a None first value is not kept
    }
    ((ArrayNode) agg.get("users")).add(user);
    ArrayNode tags = (ArrayNode) agg.get("tags");
    boolean seen = false;
    for (JsonNode t : tags) {
      seen |= t.equals(v.get("tag"));
    }
    if (!seen) {
      tags.add(v.get("tag"));
    }
    List<Long> top = new ArrayList<>();
    agg.get("top").forEach(t -> top.add(t.asLong()));
    top.add(amount);
    top.sort(Comparator.reverseOrder());
    ArrayNode kept = agg.putArray("top");
    top.stream().limit(2).forEach(kept::add);
    return agg;
  }
}
