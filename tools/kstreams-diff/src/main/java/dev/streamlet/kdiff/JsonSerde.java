package dev.streamlet.kdiff;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/** JSON values as Jackson trees: the bytes streamlet's json serde (orjson) reads and writes. */
public final class JsonSerde extends Serdes.WrapperSerde<JsonNode> {
  static final ObjectMapper MAPPER = new ObjectMapper();
  static final JsonSerde INSTANCE = new JsonSerde();

  public JsonSerde() {
    super(writer(), reader());
  }

  private static Serializer<JsonNode> writer() {
    return (topic, value) -> {
      try {
        return value == null ? null : MAPPER.writeValueAsBytes(value);
      } catch (IOException e) {
        throw new SerializationException(e);
      }
    };
  }

  private static Deserializer<JsonNode> reader() {
    return (topic, data) -> {
      try {
        return data == null ? null : MAPPER.readTree(data);
      } catch (IOException e) {
        throw new SerializationException(e);
      }
    };
  }

  static Serde<JsonNode> json() {
    return INSTANCE;
  }
}
