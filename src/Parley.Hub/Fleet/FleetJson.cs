using System.Globalization;
using System.Text.Json;
using Parley.Protocol;

namespace Parley.Hub.Fleet;

/// <summary>
/// Instances and fleet events on the wire (docs/protocol.md §15), shared by <c>fleet:instances</c>, the
/// lobby commands and the HTTP API. Environment values never appear: only their keys (<c>env_keys</c>).
/// Arguments pass through <see cref="SecretRedactor"/> (a <c>--token=…</c> is masked).
/// </summary>
public static class FleetJson
{
    /// <summary>Writes one instance as a JSON object.</summary>
    public static void WriteInstance(Utf8JsonWriter w, InstanceView view)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        WriteInstanceFields(w, view);
        w.WriteEndObject();
    }

    /// <summary>Writes one instance's fields into an object the caller opened.</summary>
    public static void WriteInstanceFields(Utf8JsonWriter w, InstanceView view)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(view);
        var (record, runtime) = (view.Record, view.Runtime);
        var spec = record.Spec;
        w.WriteString("name"u8, record.Name);
        w.WriteString("status"u8, runtime.Status);
        WriteNullable(w, "pid"u8, runtime.Pid);
        w.WriteString("command"u8, spec.Command);
        w.WriteStartArray("args"u8);
        foreach (var arg in spec.Args)
        {
            w.WriteStringValue(SecretRedactor.Redact(arg));
        }
        w.WriteEndArray();
        if (spec.Cwd is null)
        {
            w.WriteNull("cwd"u8);
        }
        else
        {
            w.WriteString("cwd"u8, spec.Cwd);
        }
        w.WriteStartArray("env_keys"u8);
        foreach (var key in spec.Env.Keys.Order(StringComparer.Ordinal))
        {
            w.WriteStringValue(key);
        }
        w.WriteEndArray();
        WriteNullable(w, "port"u8, spec.Port);
        if (spec.HealthUrl is null)
        {
            w.WriteNull("health_url"u8);
        }
        else
        {
            w.WriteString("health_url"u8, SecretRedactor.Redact(spec.HealthUrl));
        }
        w.WriteString("restart"u8, InstanceSpec.PolicyName(spec.Restart));
        w.WriteBoolean("terminal"u8, spec.Terminal);
        if (runtime.TerminalId is null)
        {
            w.WriteNull("terminal_id"u8);
        }
        else
        {
            w.WriteString("terminal_id"u8, runtime.TerminalId);
        }
        w.WriteString("desired"u8, record.DesiredRunning ? "running" : "stopped");
        w.WriteBoolean("archived"u8, record.Archived);
        WriteNullable(w, "archived_at"u8, record.ArchivedAtMs);
        WriteNullable(w, "started_at"u8, runtime.StartedAtMs);
        WriteNullable(w, "exit_code"u8, runtime.ExitCode);
        WriteNullable(w, "signal"u8, runtime.Signal);
        w.WriteNumber("restarts"u8, runtime.Restarts);
        WriteNullable(w, "last_exit_at"u8, runtime.LastExitAtMs);
        if (runtime.Error is null)
        {
            w.WriteNull("error"u8);
        }
        else
        {
            w.WriteString("error"u8, runtime.Error);
        }
        w.WriteString("created_by"u8, record.CreatedBy);
        w.WriteNumber("created_at"u8, record.CreatedAtMs);
        w.WriteNumber("updated_at"u8, record.UpdatedAtMs);
    }

    /// <summary>Writes the snapshot <c>{instances: [...], include_archived}</c>; with <paramref name="type"/> (plain streams) a <c>type</c> field comes first.</summary>
    public static void WriteSnapshot(Utf8JsonWriter w, IEnumerable<InstanceView> instances, bool includeArchived, string? type = null)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(instances);
        w.WriteStartObject();
        if (type is not null)
        {
            w.WriteString("type"u8, type);
        }
        w.WriteStartArray("instances"u8);
        foreach (var view in instances)
        {
            WriteInstance(w, view);
        }
        w.WriteEndArray();
        w.WriteBoolean("include_archived"u8, includeArchived);
        w.WriteEndObject();
    }

    /// <summary>
    /// Writes an event's payload: <c>{name, status, pid, timestamp, instance}</c> (for <c>status_changed</c> also
    /// <c>exit_code</c>, <c>signal</c> and <c>restarts</c>); <c>timestamp</c> is ISO-8601 UTC with milliseconds.
    /// </summary>
    public static void WriteEvent(Utf8JsonWriter w, FleetEvent change) => WriteEvent(w, change, withType: false);

    /// <summary>The same payload with <c>type</c> (the event's name) first, for plain streams.</summary>
    public static void WriteEvent(Utf8JsonWriter w, FleetEvent change, bool withType)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(change);
        var view = change.Instance;
        w.WriteStartObject();
        if (withType)
        {
            w.WriteString("type"u8, change.Kind);
        }
        w.WriteString("name"u8, view.Name);
        w.WriteString("status"u8, view.Runtime.Status);
        WriteNullable(w, "pid"u8, view.Runtime.Pid);
        if (change.Kind == FleetEvent.StatusChanged)
        {
            WriteNullable(w, "exit_code"u8, view.Runtime.ExitCode);
            WriteNullable(w, "signal"u8, view.Runtime.Signal);
            w.WriteNumber("restarts"u8, view.Runtime.Restarts);
        }
        w.WriteString("timestamp"u8, Iso(change.TimestampMs));
        w.WritePropertyName("instance"u8);
        WriteInstance(w, view);
        w.WriteEndObject();
    }

    /// <summary>Unix ms as ISO-8601 UTC with milliseconds, e.g. <c>2026-02-20T01:23:45.123Z</c>.</summary>
    public static string Iso(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// Reads a create request <c>{name, command, args?, cwd?, env?, port?, health_url?, restart?, terminal?, start?}</c>;
    /// throws <c>invalid_instance</c> naming the field that is wrong.
    /// </summary>
    public static (string Name, InstanceSpec Spec, bool Start) ReadCreate(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw Invalid("body", "a create request is a JSON object");
        }
        var name = String(body, "name") ?? throw Invalid("name", "required");
        var command = String(body, "command") ?? throw Invalid("command", "required");
        var args = new List<string>();
        if (Property(body, "args") is { } a)
        {
            if (a.ValueKind != JsonValueKind.Array || a.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
            {
                throw Invalid("args", "an array of strings");
            }
            args.AddRange(a.EnumerateArray().Select(x => x.GetString()!));
        }
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Property(body, "env") is { } e)
        {
            if (e.ValueKind != JsonValueKind.Object || e.EnumerateObject().Any(p => p.Value.ValueKind != JsonValueKind.String))
            {
                throw Invalid("env", "an object of string values, e.g. {\"RUST_LOG\": \"info\"}");
            }
            foreach (var p in e.EnumerateObject())
            {
                env[p.Name] = p.Value.GetString()!;
            }
        }
        int? port = null;
        if (Property(body, "port") is { } p2)
        {
            port = p2.ValueKind == JsonValueKind.Number && p2.TryGetInt32(out var n) ? n : throw Invalid("port", "a number from 1 to 65535");
        }
        var policy = RestartPolicy.Never;
        if (String(body, "restart") is { } r && !InstanceSpec.TryParsePolicy(r, out policy))
        {
            throw Invalid("restart", "never, on-failure or always");
        }
        return (name, new InstanceSpec(command, args, String(body, "cwd"), env, port, String(body, "health_url"), policy, ReadFlag(body, "terminal")), ReadFlag(body, "start"));
    }

    /// <summary>The optional boolean <paramref name="name"/> of <paramref name="body"/> (false when absent); throws <c>invalid_instance</c> for a non-boolean.</summary>
    public static bool ReadFlag(JsonElement body, string name) => Property(body, name) switch
    {
        null => false,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw Invalid(name, "true or false"),
    };

    /// <summary>The required string <paramref name="name"/> of <paramref name="body"/>; throws <c>invalid_instance</c> otherwise.</summary>
    public static string ReadName(JsonElement body, string name) => String(body, name) ?? throw Invalid(name, "required (a string)");

    private static JsonElement? Property(JsonElement body, string name) =>
        body.ValueKind == JsonValueKind.Object && body.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static string? String(JsonElement body, string name) => Property(body, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } value => value.GetString(),
        _ => throw Invalid(name, "must be a string"),
    };

    private static FleetException Invalid(string field, string message) => new(FleetErrors.InvalidInstance, $"{field}: {message}");

    private static void WriteNullable(Utf8JsonWriter w, ReadOnlySpan<byte> name, long? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
