using System.Text.Json;

namespace Parley.Identity;

public static partial class IdentityJson
{
    /// <summary>Writes a group as listed: name (no <c>@</c>), created_by, created_at, member_count (direct members).</summary>
    public static void WriteGroup(Utf8JsonWriter w, GroupRecord group)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(group);
        w.WriteString("name", group.Name);
        w.WriteString("created_by", group.CreatedBy);
        w.WriteNumber("created_at", group.CreatedAtMs);
        w.WriteNumber("member_count", group.Members.Count);
    }

    /// <summary>Writes one group in full: as <see cref="WriteGroup"/>, plus members [{name, lead}], subgroups [names] and expanded [every user reached].</summary>
    public static void WriteGroupDetails(Utf8JsonWriter w, GroupDetails details)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(details);
        WriteGroup(w, details.Group);
        WriteArray(w, "members", details.Group.Members, static (writer, m) =>
        {
            writer.WriteString("name", m.UserName);
            writer.WriteBoolean("lead", m.IsLead);
        });
        WriteStrings(w, "subgroups", details.Subgroups);
        WriteStrings(w, "expanded", details.Expanded);
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var value in values)
        {
            w.WriteStringValue(value);
        }
        w.WriteEndArray();
    }
}
