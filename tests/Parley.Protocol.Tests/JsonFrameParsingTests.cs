using System.Text;
using System.Text.Json;

namespace Parley.Protocol.Tests;

/// <summary><see cref="PhoenixJsonCodec.TryParse"/>: the V2 envelope (PHOENIX-V2 §2).</summary>
public class JsonFrameParsingTests
{
    private static bool Parse(string json, out PhoenixMessage? message, out string error) =>
        PhoenixJsonCodec.TryParse(Encoding.UTF8.GetBytes(json), out message, out error);

    [Fact]
    public void Parses_a_push_with_string_refs()
    {
        Assert.True(Parse("""["3","7","room:lobby","new_msg",{"body":"hi"}]""", out var message, out var error));
        using (message)
        {
            Assert.Equal("", error);
            Assert.NotNull(message);
            Assert.Equal("3", message.JoinRef);
            Assert.Equal("7", message.Ref);
            Assert.Equal("room:lobby", message.Topic);
            Assert.Equal("new_msg", message.Event);
            Assert.False(message.IsBinary);
            Assert.True(message.BinaryPayload.IsEmpty);
            Assert.Equal(JsonValueKind.Object, message.Payload.ValueKind);
            Assert.Equal("hi", message.Payload.GetProperty("body").GetString());
        }
    }

    [Fact]
    public void Parses_null_refs()
    {
        Assert.True(Parse("""[null,null,"phoenix","heartbeat",{}]""", out var message, out _));
        using (message)
        {
            Assert.Null(message!.JoinRef);
            Assert.Null(message.Ref);
            Assert.Equal("phoenix", message.Topic);
            Assert.Equal("heartbeat", message.Event);
        }
    }

    [Fact]
    public void Refs_are_opaque_strings()
    {
        Assert.True(Parse("""["abc-\u00e9","00012","t","e",{}]""", out var message, out _));
        using (message)
        {
            Assert.Equal("abc-\u00e9", message!.JoinRef);
            Assert.Equal("00012", message.Ref);
        }
    }

    [Fact]
    public void Trailing_elements_are_ignored()
    {
        Assert.True(Parse("""["1","2","room:a","msg",{"body":"x"},"extra",42,{"more":true}]""", out var message, out _));
        using (message)
        {
            Assert.Equal("msg", message!.Event);
            Assert.Equal("x", message.Payload.GetProperty("body").GetString());
        }
    }

    [Theory]
    [InlineData("{}", JsonValueKind.Object)]
    [InlineData("[1,2]", JsonValueKind.Array)]
    [InlineData("\"text\"", JsonValueKind.String)]
    [InlineData("12.5", JsonValueKind.Number)]
    [InlineData("true", JsonValueKind.True)]
    [InlineData("null", JsonValueKind.Null)]
    public void Payload_may_be_any_json(string payload, JsonValueKind kind)
    {
        Assert.True(Parse($$"""[null,"1","room:a","e",{{payload}}]""", out var message, out _));
        using (message)
        {
            Assert.Equal(kind, message!.Payload.ValueKind);
            Assert.Equal(payload, message.Payload.GetRawText());
        }
    }

    [Theory]
    [InlineData("not json", "malformed JSON")]
    [InlineData("[\"1\",\"2\",\"t\",\"e\",{}", "malformed JSON")]
    [InlineData("", "malformed JSON")]
    [InlineData("{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}", "JSON array")]
    [InlineData("\"a string\"", "JSON array")]
    [InlineData("[\"1\",\"2\",\"t\",\"e\"]", "JSON array")]
    [InlineData("[]", "JSON array")]
    [InlineData("[\"1\",2,\"t\",\"e\",{}]", "join_ref and ref must be strings or null")]
    [InlineData("[1,\"2\",\"t\",\"e\",{}]", "join_ref and ref must be strings or null")]
    [InlineData("[{},\"2\",\"t\",\"e\",{}]", "join_ref and ref must be strings or null")]
    [InlineData("[\"1\",\"2\",7,\"e\",{}]", "topic and event must be strings")]
    [InlineData("[\"1\",\"2\",null,\"e\",{}]", "topic and event must be strings")]
    [InlineData("[\"1\",\"2\",\"t\",false,{}]", "topic and event must be strings")]
    [InlineData("[\"1\",\"2\",\"\",\"e\",{}]", "topic and event must not be empty")]
    [InlineData("[\"1\",\"2\",\"t\",\"\",{}]", "topic and event must not be empty")]
    public void Malformed_frames_are_rejected_with_a_reason(string json, string reasonPart)
    {
        Assert.False(Parse(json, out var message, out var error));
        Assert.Null(message);
        Assert.Contains(reasonPart, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Deeply_nested_payload_is_rejected()
    {
        var deep = new string('[', 40) + new string(']', 40);
        Assert.False(Parse($"[null,\"1\",\"t\",\"e\",{deep}]", out var message, out var error));
        Assert.Null(message);
        Assert.Equal("malformed JSON", error);
    }

    [Fact]
    public void Encoded_frame_parses_back_to_the_same_fields()
    {
        var frame = WireFrames.Text("j1", null, "room:x", "msg", 0, static (w, _) =>
        {
            w.WriteStartObject();
            w.WriteNumber("n", 1);
            w.WriteEndObject();
        });

        Assert.True(PhoenixJsonCodec.TryParse(frame.AsMemory(2), out var message, out _));
        using (message)
        {
            Assert.Equal("j1", message!.JoinRef);
            Assert.Null(message.Ref);
            Assert.Equal("room:x", message.Topic);
            Assert.Equal(1, message.Payload.GetProperty("n").GetInt32());
        }
    }

    [Fact]
    public void FromJson_builds_a_text_message()
    {
        using var document = JsonDocument.Parse("""{"a":1}""");
        using var message = PhoenixMessage.FromJson("1", "2", "room:a", "msg", document.RootElement);

        Assert.Equal("1", message.JoinRef);
        Assert.Equal("2", message.Ref);
        Assert.False(message.IsBinary);
        Assert.Equal(1, message.Payload.GetProperty("a").GetInt32());
    }
}
