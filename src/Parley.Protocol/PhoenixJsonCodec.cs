using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Parley.Protocol;

/// <summary>
/// The Phoenix V2 JSON serializer: <c>[join_ref, ref, topic, event, payload]</c> (docs/protocol.md §Frames).
/// Trailing elements after the payload are ignored, as Phoenix does.
/// </summary>
public static class PhoenixJsonCodec
{
    /// <summary>Writer options shared by every frame: compact, non-ASCII kept as UTF-8 (the frames are not HTML).</summary>
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 32 };

    /// <summary>
    /// Parses one text frame. On failure returns false with a reason fit for a close frame.
    /// <paramref name="utf8"/> must stay unchanged until the message is disposed.
    /// </summary>
    public static bool TryParse(ReadOnlyMemory<byte> utf8, out PhoenixMessage? message, out string error)
    {
        message = null;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, DocumentOptions);
        }
        catch (JsonException)
        {
            error = "malformed JSON";
            return false;
        }

        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() < 5)
        {
            document.Dispose();
            error = "frame must be a JSON array [join_ref, ref, topic, event, payload]";
            return false;
        }
        var joinRef = root[0];
        var @ref = root[1];
        var topic = root[2];
        var @event = root[3];
        if (!IsStringOrNull(joinRef) || !IsStringOrNull(@ref))
        {
            document.Dispose();
            error = "join_ref and ref must be strings or null";
            return false;
        }
        if (topic.ValueKind != JsonValueKind.String || @event.ValueKind != JsonValueKind.String)
        {
            document.Dispose();
            error = "topic and event must be strings";
            return false;
        }
        var topicText = topic.GetString()!;
        var eventText = @event.GetString()!;
        if (topicText.Length == 0 || eventText.Length == 0)
        {
            document.Dispose();
            error = "topic and event must not be empty";
            return false;
        }
        message = new PhoenixMessage(joinRef.GetString(), @ref.GetString(), topicText, eventText, document, root[4], default, false);
        error = "";
        return true;
    }

    /// <summary>Writes one frame as JSON text; the payload is written by <paramref name="writePayload"/>.</summary>
    public static void Write<TState>(IBufferWriter<byte> output, string? joinRef, string? @ref, string topic, string @event, TState state, Action<Utf8JsonWriter, TState> writePayload)
    {
        using var writer = new Utf8JsonWriter(output, WriterOptions);
        Write(writer, joinRef, @ref, topic, @event, state, writePayload);
    }

    /// <summary>Writes one frame with an existing writer (which the caller flushes).</summary>
    public static void Write<TState>(Utf8JsonWriter writer, string? joinRef, string? @ref, string topic, string @event, TState state, Action<Utf8JsonWriter, TState> writePayload)
    {
        writer.WriteStartArray();
        WriteNullableString(writer, joinRef);
        WriteNullableString(writer, @ref);
        writer.WriteStringValue(topic);
        writer.WriteStringValue(@event);
        writePayload(writer, state);
        writer.WriteEndArray();
    }

    /// <summary>Writes a reply payload <c>{"status": status, "response": …}</c>.</summary>
    public static void WriteReplyPayload<TState>(Utf8JsonWriter writer, string status, TState state, Action<Utf8JsonWriter, TState> writeResponse)
    {
        writer.WriteStartObject();
        writer.WriteString("status"u8, status);
        writer.WritePropertyName("response"u8);
        writeResponse(writer, state);
        writer.WriteEndObject();
    }

    private static bool IsStringOrNull(JsonElement element) =>
        element.ValueKind is JsonValueKind.String or JsonValueKind.Null;

    private static void WriteNullableString(Utf8JsonWriter writer, string? value)
    {
        if (value is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteStringValue(value);
        }
    }
}
