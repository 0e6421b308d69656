package dev.streamlet.kdiff;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.LongNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.TableJoined;

/**
 * The named topologies. Each mirrors, operator for operator and function for function, the Python
 * topology of the same name in tests/differential/topologies.py (docs/testing.md has the table).
 * Input values: streams {"user": str|null, "amount": int, "tag": str}, table "users" {"city": str,
 * "age": int}, table "accounts" {"plan": str, "credits": int}, global table "countries" {"name": str,
 * "vat": int}; null = tombstone. Python functions
 * test {@code v is None} where Java tests null.
 */
final class Topologies {
  record Definition(String name, Topology topology, List<String> outputs) {}

  private static final JsonNodeFactory F = JsonNodeFactory.instance;
  /** How to build one topology, and the topics it writes (the ones compared). */
  private record Spec(Consumer<StreamsBuilder> build, List<String> outputs) {}

  private static Map.Entry<String, Spec> spec(String name, Consumer<StreamsBuilder> build,
      String... outputs) {
    return Map.entry(name, new Spec(build, List.of(outputs)));
  }

  private static final Map<String, Spec> SPECS = Map.ofEntries(
      spec("stateless", Topologies::stateless, "filtered", "filtered-not", "mapped", "mapped-values",
          "flat-mapped", "flat-mapped-values", "rekeyed", "small", "medium", "large"),
      spec("count", Topologies::count, "counts-out"),
      spec("reduce", Topologies::reduce, "reduced-out"),
      spec("aggregate", Topologies::aggregate, "agg-out"),
      spec("stream-group-by", Topologies::streamGroupBy, "per-user-out"),
      spec("table-group-by", Topologies::tableGroupBy, "city-counts", "city-ages"),
      spec("table-to-stream", Topologies::tableToStream, "users-changes"),
      spec("table-filter", Topologies::tableFilter, "older"),
      spec("stream-table-join", Topologies::streamTableJoin, "enriched", "enriched-left"),
      spec("named-aggregators", NamedAggregators::build, "summary-out"),
      spec("rekeyed-join", Topologies::rekeyedJoin, "by-amount", "by-amount-left"),
      spec("derived-table-join", Topologies::derivedTableJoin, "older-cities"),
      spec("table-table-join", Topologies::tableTableJoin, "tt-inner", "tt-left", "tt-outer"),
      spec("table-join-filter", Topologies::tableJoinFilter, "tt-gold"),
      spec("windowed-changes", Topologies::windowedChanges, "tumbling-counts", "hopping-sums"),
      spec("windowed-final", Topologies::windowedFinal, "tumbling-final"),
      spec("windowed-final-hopping", Topologies::windowedFinalHopping, "hopping-final"),
      spec("session-windows", Topologies::sessionWindows, "session-counts", "session-sums", "session-final"),
      spec("sliding-windows", Topologies::slidingWindows, "sliding-counts", "sliding-sums"),
      spec("sliding-final", Topologies::slidingFinal, "sliding-final"),
      spec("global-table-join", Topologies::globalTableJoin, "gt-inner", "gt-left", "gt-by-key"),
      spec("fk-join", Topologies::fkJoin, "fk-inner", "fk-left"));

  private Topologies() {}

  static Definition get(String name) {
    Spec spec = SPECS.get(name);
    if (spec == null) {
      throw new IllegalArgumentException("no topology named " + name + "; known: " + SPECS.keySet());
    }
    StreamsBuilder builder = new StreamsBuilder();
    spec.build().accept(builder);
    return new Definition(name, builder.build(), spec.outputs());
  }

  static KStream<String, JsonNode> in(StreamsBuilder b) {
    return b.stream("in", Consumed.with(Serdes.String(), JsonSerde.json()));
  }

  private static KTable<String, JsonNode> users(StreamsBuilder b) {
    return b.table("users", Consumed.with(Serdes.String(), JsonSerde.json()), Materialized.as("users"));
  }

  private static KTable<String, JsonNode> accounts(StreamsBuilder b) {
    return b.table("accounts", Consumed.with(Serdes.String(), JsonSerde.json()), Materialized.as("accounts"));
  }

  private static long amount(JsonNode v) {
    return v.get("amount").asLong();
  }

  private static ObjectNode obj() {
    return F.objectNode();
  }

  private static void stateless(StreamsBuilder b) {
    KStream<String, JsonNode> s = in(b);
    s.filter((k, v) -> v != null && amount(v) > 50).to("filtered");
    s.filterNot((k, v) -> v != null && amount(v) > 50).to("filtered-not");
    s.map((k, v) -> KeyValue.pair(v == null ? null : v.get("tag").asText(),
        v == null ? null : (JsonNode) obj().put("key", k).put("double", amount(v) * 2))).to("mapped");
    s.mapValues(v -> v == null ? null : (JsonNode) ((ObjectNode) v.deepCopy()).put("big", amount(v) > 50))
        .to("mapped-values");
    s.flatMap((k, v) -> {
      List<KeyValue<String, JsonNode>> out = new ArrayList<>();
      for (long i = 0; v != null && i < amount(v) % 3; i++) {
        out.add(KeyValue.pair(v.get("tag").asText(), obj().put("i", i).put("amount", amount(v))));
      }
      return out;
    }).to("flat-mapped");
    s.flatMapValues(v -> {
      List<JsonNode> out = new ArrayList<>();
      for (long i = 0; v != null && i < amount(v) % 3; i++) {
        out.add(LongNode.valueOf(amount(v)));
      }
      return out;
    }).to("flat-mapped-values");
    s.selectKey((k, v) -> v == null || v.get("user").isNull() ? null : v.get("user").asText()).to("rekeyed");
    var branches = s.split(Named.as("size-"))
        .branch((k, v) -> v != null && amount(v) < 30, Branched.as("small"))
        .branch((k, v) -> v != null && amount(v) < 70, Branched.as("medium"))
        .defaultBranch(Branched.as("large"));
    branches.get("size-small").to("small");
    branches.get("size-medium").to("medium");
    branches.get("size-large").to("large");
  }

  private static void count(StreamsBuilder b) {
    in(b).groupByKey().count(Materialized.as("counts"))
        .toStream().mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("counts-out");
  }

  private static void reduce(StreamsBuilder b) {
    in(b).groupByKey().reduce((a, v) -> (JsonNode) obj().put("amount", amount(a) + amount(v))
            .set("user", v.get("user")), Materialized.as("reduced"))
        .toStream().to("reduced-out");
  }

  private static void aggregate(StreamsBuilder b) {
    in(b).groupByKey().aggregate(
        () -> (JsonNode) obj().put("n", 0).put("sum", 0).set("tags", F.arrayNode()),
        (k, v, agg) -> {
          ArrayNode tags = F.arrayNode().addAll((ArrayNode) agg.get("tags")).add(v.get("tag"));
          while (tags.size() > 3) {
            tags.remove(0);
          }
          return obj().put("n", agg.get("n").asLong() + 1).put("sum", agg.get("sum").asLong() + amount(v))
              .set("tags", tags);
        },
        Materialized.as("agg"))
        .toStream().to("agg-out");
  }

  private static void streamGroupBy(StreamsBuilder b) {
    in(b).groupBy((k, v) -> v == null || v.get("user").isNull() ? null : v.get("user").asText(),
            Grouped.with(Serdes.String(), JsonSerde.json()))
        .count(Materialized.as("per-user"))
        .toStream().mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("per-user-out");
  }

  private static void tableGroupBy(StreamsBuilder b) {
    KTable<String, JsonNode> users = users(b);
    users.groupBy((k, v) -> KeyValue.pair(v.get("city").asText(), v), Grouped.with(Serdes.String(),
            JsonSerde.json()))
        .count(Materialized.as("per-city"))
        .toStream().mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("city-counts");
    users.groupBy((k, v) -> KeyValue.pair(v.get("city").asText(), v), Grouped.with(Serdes.String(),
            JsonSerde.json()))
        .aggregate(() -> (JsonNode) LongNode.valueOf(0),
            (k, v, agg) -> LongNode.valueOf(agg.asLong() + v.get("age").asLong()),
            (k, v, agg) -> LongNode.valueOf(agg.asLong() - v.get("age").asLong()),
            Materialized.as("age-sum"))
        .toStream().to("city-ages");
  }

  private static void tableToStream(StreamsBuilder b) {
    users(b).toStream().to("users-changes");
  }

  private static void tableFilter(StreamsBuilder b) {
    users(b).filter((k, v) -> v.get("age").asLong() >= 30)
        .mapValues(v -> (JsonNode) TextNode.valueOf(v.get("city").asText()))
        .toStream().to("older");
  }

  private static void streamTableJoin(StreamsBuilder b) {
    KStream<String, JsonNode> orders = in(b);
    KTable<String, JsonNode> users = users(b);
    orders.join(users, (o, u) -> (JsonNode) obj().put("amount", o == null ? null : amount(o))
        .put("city", u.get("city").asText())).to("enriched");
    orders.leftJoin(users, (o, u) -> (JsonNode) obj().put("amount", o == null ? null : amount(o))
        .put("city", u == null ? null : u.get("city").asText())).to("enriched-left");
  }

  private static void rekeyedJoin(StreamsBuilder b) {
    KStream<String, JsonNode> in2 = b.stream("in2", Consumed.with(Serdes.String(), JsonSerde.json()));
    KStream<String, JsonNode> orders = in(b).merge(in2)
        .selectKey((k, v) -> v == null ? null : "k" + amount(v) % 6);
    KTable<String, JsonNode> users = users(b);
    orders.join(users, (o, u) -> (JsonNode) obj().put("tag", o == null ? null : o.get("tag").asText())
        .put("age", u.get("age").asLong())).to("by-amount");
    orders.leftJoin(users, (o, u) -> (JsonNode) obj().put("tag", o == null ? null : o.get("tag").asText())
        .put("age", u == null ? null : u.get("age").asLong())).to("by-amount-left");
  }

  private static void derivedTableJoin(StreamsBuilder b) {
    KTable<String, JsonNode> older = users(b).filter((k, v) -> v.get("age").asLong() >= 30)
        .mapValues(v -> (JsonNode) TextNode.valueOf(v.get("city").asText()));
    in(b).leftJoin(older, (o, city) -> (JsonNode) obj().put("amount", o == null ? null : amount(o))
        .set("city", city)).to("older-cities");
  }

  /** The table–table joiner: a left join passes a null account, an outer join either side null. */
  private static JsonNode cityPlan(JsonNode u, JsonNode a) {
    return obj().put("city", u == null ? null : u.get("city").asText())
        .put("plan", a == null ? null : a.get("plan").asText());
  }

  private static void tableTableJoin(StreamsBuilder b) {
    KTable<String, JsonNode> users = users(b);
    KTable<String, JsonNode> accounts = accounts(b);
    users.join(accounts, Topologies::cityPlan).toStream().to("tt-inner");
    users.leftJoin(accounts, Topologies::cityPlan).toStream().to("tt-left");
    users.outerJoin(accounts, Topologies::cityPlan).toStream().to("tt-outer");
  }

  private static void tableJoinFilter(StreamsBuilder b) {
    users(b).join(accounts(b), Topologies::cityPlan)
        .filter((k, v) -> "gold".equals(v.get("plan").asText()))
        .toStream().to("tt-gold");
  }

  // -- windows (the Python twins: windowed_changes / windowed_final) ------------------------------
  /** A windowed key as the Python side writes it: "key@start/end". */
  private static String windowKey(Windowed<String> w) {
    return w.key() + "@" + w.window().start() + "/" + w.window().end();
  }

  private static TimeWindows ms(long size, long advance, long grace) {
    return TimeWindows.ofSizeAndGrace(Duration.ofMillis(size), Duration.ofMillis(grace))
        .advanceBy(Duration.ofMillis(advance));
  }

  /**
   * The stream of a windowed aggregation, tombstones dropped: Kafka Streams 4.4 hands null values to
   * windowed aggregators (a windowed count counts them) though not to unwindowed ones; streamlet drops
   * them in both (the issue's rule, ksqlDB's too). Everything else is compared as it is.
   */
  private static KStream<String, JsonNode> inWithoutTombstones(StreamsBuilder b) {
    return in(b).filter((k, v) -> v != null);
  }

  private static void windowedChanges(StreamsBuilder b) {
    KStream<String, JsonNode> in = inWithoutTombstones(b);
    in.groupByKey().windowedBy(ms(1000, 1000, 300)).count(Materialized.as("tumbling-counts"))
        .toStream((w, v) -> windowKey(w))
        .mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("tumbling-counts");
    in.groupByKey().windowedBy(ms(1000, 500, 0))
        .aggregate(() -> (JsonNode) LongNode.valueOf(0),
            (k, v, agg) -> (JsonNode) LongNode.valueOf(agg.asLong() + amount(v)),
            Materialized.as("hopping-sums"))
        .toStream((w, v) -> windowKey(w)).to("hopping-sums");
  }

  private static void windowedFinal(StreamsBuilder b) {
    KStream<String, JsonNode> in = inWithoutTombstones(b);
    in.groupByKey().windowedBy(ms(1000, 1000, 200)).emitStrategy(EmitStrategy.onWindowClose())
        .count(Materialized.as("tumbling-final"))
        .toStream((w, v) -> windowKey(w))
        .mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("tumbling-final");
  }

  private static void windowedFinalHopping(StreamsBuilder b) {
    KStream<String, JsonNode> in = inWithoutTombstones(b);
    in.groupByKey().windowedBy(ms(1500, 500, 100)).emitStrategy(EmitStrategy.onWindowClose())
        .aggregate(() -> (JsonNode) LongNode.valueOf(0),
            (k, v, agg) -> (JsonNode) LongNode.valueOf(agg.asLong() + amount(v)),
            Materialized.as("hopping-final"))
        .toStream((w, v) -> windowKey(w)).to("hopping-final");
  }

  private static void sessionWindows(StreamsBuilder b) {
    KStream<String, JsonNode> in = inWithoutTombstones(b);
    SessionWindows gap300 = SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(300), Duration.ofMillis(200));
    in.groupByKey().windowedBy(gap300).count(Materialized.as("session-counts"))
        .toStream((w, v) -> windowKey(w))
        .mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("session-counts");
    in.groupByKey().windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(150), Duration.ofMillis(0)))
        .aggregate(() -> (JsonNode) LongNode.valueOf(0),
            (k, v, agg) -> (JsonNode) LongNode.valueOf(agg.asLong() + amount(v)),
            (k, a, c) -> (JsonNode) LongNode.valueOf(a.asLong() + c.asLong()),
            Materialized.as("session-sums"))
        .toStream((w, v) -> windowKey(w)).to("session-sums");
    in.groupByKey().windowedBy(gap300).emitStrategy(EmitStrategy.onWindowClose())
        .count(Materialized.as("session-final"))
        .toStream((w, v) -> windowKey(w))
        .mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("session-final");
  }

  private static SlidingWindows sliding(long difference, long grace) {
    return SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(difference), Duration.ofMillis(grace));
  }

  private static void slidingWindows(StreamsBuilder b) {
    KStream<String, JsonNode> in = inWithoutTombstones(b);
    in.groupByKey().windowedBy(sliding(300, 200)).count(Materialized.as("sliding-counts"))
        .toStream((w, v) -> windowKey(w))
        .mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("sliding-counts");
    in.groupByKey().windowedBy(sliding(1500, 0))
        .aggregate(() -> (JsonNode) LongNode.valueOf(0),
            (k, v, agg) -> (JsonNode) LongNode.valueOf(agg.asLong() + amount(v)),
            Materialized.as("sliding-sums"))
        .toStream((w, v) -> windowKey(w)).to("sliding-sums");
  }

  private static void slidingFinal(StreamsBuilder b) {
    inWithoutTombstones(b).groupByKey().windowedBy(sliding(300, 100))
        .emitStrategy(EmitStrategy.onWindowClose()).count(Materialized.as("sliding-final"))
        .toStream((w, v) -> windowKey(w))
        .mapValues(v -> v == null ? null : (JsonNode) LongNode.valueOf(v)).to("sliding-final");
  }

  /** The global table's lookup key from a stream value: "u2" -> "k2"; null without a user. */
  private static String byUser(JsonNode v) {
    return v == null || v.get("user").isNull() ? null : "k" + v.get("user").asText().substring(1);
  }

  private static JsonNode amountVat(JsonNode o, JsonNode c) {
    return obj().put("amount", o == null ? null : amount(o))
        .put("vat", c == null ? null : c.get("vat").asLong());
  }

  private static void globalTableJoin(StreamsBuilder b) {
    GlobalKTable<String, JsonNode> countries =
        b.globalTable("countries", Consumed.with(Serdes.String(), JsonSerde.json()));
    KStream<String, JsonNode> orders = in(b);
    orders.join(countries, (k, v) -> byUser(v), Topologies::amountVat).to("gt-inner");
    orders.leftJoin(countries, (k, v) -> byUser(v), Topologies::amountVat).to("gt-left");
    orders.leftJoin(countries, (k, v) -> k, Topologies::amountVat).to("gt-by-key");
  }

  /** The foreign-key joiner: a left join passes a null user when the membership's user has no row. */
  private static JsonNode levelCity(JsonNode m, JsonNode u) {
    return obj().put("level", m.get("level").asLong())
        .put("city", u == null ? null : u.get("city").asText());
  }

  private static void fkJoin(StreamsBuilder b) {
    KTable<String, JsonNode> memberships =
        b.table("memberships", Consumed.with(Serdes.String(), JsonSerde.json()), Materialized.as("memberships"));
    KTable<String, JsonNode> users = users(b);
    Function<JsonNode, String> userOf = m -> m.get("user").isNull() ? null : m.get("user").asText();
    memberships.join(users, userOf, Topologies::levelCity, TableJoined.as("fk-inner"))
        .toStream().to("fk-inner");
    memberships.leftJoin(users, userOf, Topologies::levelCity, TableJoined.as("fk-left"))
        .toStream().to("fk-left");
  }
}
