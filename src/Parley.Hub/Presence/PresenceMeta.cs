using System.Text.Json;

namespace Parley.Hub.Presence;

/// <summary>
/// One tracked presence: a connection on a topic, as it appears in <c>presence_state</c> and
/// <c>presence_diff</c> (docs/protocol.md §Presence). Immutable: an update replaces the meta with a new
/// one whose <see cref="PreviousRef"/> is the old <see cref="Ref"/>.
/// </summary>
/// <param name="Ref">The <c>phx_ref</c>: unique per tracked presence, across hub runs.</param>
/// <param name="PreviousRef">The <c>phx_ref_prev</c> of an update (the replaced meta's ref); null for a first join.</param>
/// <param name="OnlineAtMs">The <c>online_at</c>: when the connection joined the topic, in milliseconds since the Unix epoch.</param>
/// <param name="Client">The <c>client</c> kind: one of <see cref="PresenceValues.Clients"/>.</param>
/// <param name="Status">The user's <c>status</c>: one of <see cref="PresenceValues.Statuses"/>.</param>
/// <param name="Summary">The user's <c>summary</c> (what they are working on), or null when unset.</param>
public sealed record PresenceMeta(string Ref, string? PreviousRef, long OnlineAtMs, string Client, string Status, string? Summary)
{
    /// <summary>Writes the meta object <c>{phx_ref, phx_ref_prev?, online_at, client, status, summary}</c>.</summary>
    public void Write(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteString("phx_ref"u8, Ref);
        if (PreviousRef is not null)
        {
            writer.WriteString("phx_ref_prev"u8, PreviousRef);
        }
        writer.WriteNumber("online_at"u8, OnlineAtMs);
        writer.WriteString("client"u8, Client);
        writer.WriteString("status"u8, Status);
        if (Summary is null)
        {
            writer.WriteNull("summary"u8);
        }
        else
        {
            writer.WriteString("summary"u8, Summary);
        }
        writer.WriteEndObject();
    }
}

/// <summary>The presence vocabularies: statuses and client kinds (docs/protocol.md §Presence).</summary>
public static class PresenceValues
{
    /// <summary>The status every user starts with.</summary>
    public const string DefaultStatus = "idle";

    /// <summary>Statuses a user may set: <c>idle</c> (the default), <c>working</c>, <c>dnd</c>, <c>away</c>.</summary>
    public static IReadOnlyList<string> Statuses { get; } = ["idle", "working", "dnd", "away"];

    /// <summary>Client kinds a connection may declare: <c>cli</c>, <c>agent</c>, <c>web</c>, <c>tui</c>, <c>service</c>.</summary>
    public static IReadOnlyList<string> Clients { get; } = ["cli", "agent", "web", "tui", "service"];

    /// <summary>The client kind of a connection from a browser (the upgrade carried an <c>Origin</c>) that declared none.</summary>
    public const string DefaultBrowserClient = "web";

    /// <summary>The client kind of any other connection that declared none.</summary>
    public const string DefaultClient = "service";

    /// <summary>The canonical (shared) instance of <paramref name="status"/>, or null when it is not a status.</summary>
    public static string? ParseStatus(string? status) => Find(Statuses, status);

    /// <summary>The canonical (shared) instance of <paramref name="client"/>, or null when it is not a client kind.</summary>
    public static string? ParseClient(string? client) => Find(Clients, client);

    private static string? Find(IReadOnlyList<string> values, string? value)
    {
        foreach (var candidate in values)
        {
            if (string.Equals(candidate, value, StringComparison.Ordinal))
            {
                return candidate;
            }
        }
        return null;
    }
}
