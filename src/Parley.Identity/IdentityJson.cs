using System.Text.Json;
using Parley.Hub.Connections;

namespace Parley.Identity;

/// <summary>The JSON shapes of identity objects, shared by the HTTP API and the <c>hub:lobby</c> commands.</summary>
public static class IdentityJson
{
    public static void WriteUser(Utf8JsonWriter w, UserRecord user)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(user);
        w.WriteString("name", user.Name);
        w.WriteString("role", HubRoles.Name(user.Role));
        w.WriteNumber("created_at", user.CreatedAtMs);
        if (user.BannedAtMs is { } banned)
        {
            w.WriteNumber("banned_at", banned);
        }
    }

    public static void WriteSession(Utf8JsonWriter w, HubConnection connection)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(connection);
        var principal = connection.Principal;
        w.WriteString("id", connection.Id);
        w.WriteString("name", principal.Name);
        if (principal.Roles.Count > 0)
        {
            w.WriteString("role", principal.Roles[0]);
        }
        w.WriteNumber("connected_at", connection.ConnectedAt.ToUnixTimeMilliseconds());
        w.WriteNumber("topics", connection.JoinedCount);
        if (principal.ExpiresAtMs is { } expires)
        {
            w.WriteNumber("expires_at", expires);
        }
        if (principal.CredentialId is { } key)
        {
            w.WriteString("api_key_id", key);
        }
    }

    public static void WriteChannel(Utf8JsonWriter w, ChannelRecord channel, bool withMembers)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(channel);
        w.WriteString("topic", channel.Topic);
        w.WriteBoolean("private", channel.IsPrivate);
        w.WriteString("created_by", channel.CreatedBy);
        w.WriteNumber("created_at", channel.CreatedAtMs);
        if (channel.DeletedAtMs is { } deleted)
        {
            w.WriteNumber("deleted_at", deleted);
        }
        if (withMembers)
        {
            w.WriteStartArray("members");
            foreach (var member in channel.Members)
            {
                w.WriteStartObject();
                w.WriteString("name", member.UserName);
                w.WriteBoolean("admin", member.IsAdmin);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
    }

    /// <summary>Writes <paramref name="name"/> as an array of objects, one per item.</summary>
    public static void WriteArray<T>(Utf8JsonWriter w, string name, IEnumerable<T> items, Action<Utf8JsonWriter, T> write)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(write);
        w.WriteStartArray(name);
        foreach (var item in items)
        {
            w.WriteStartObject();
            write(w, item);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
